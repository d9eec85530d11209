//! A node (gate, manager or worker) as one machine: it owns its membership machines,
//! routes each input to the right one and merges their outputs. Shells only see nodes.
//!
//! Who shares a membership cluster (issue 2): the gates of all DCs form one cluster
//! (`ClusterId::GATES`); each DC's managers and workers form another (`ClusterId::dc`).
//! Gates also health-check every DC's managers: a gate runs, per DC, an *observer*
//! membership machine on that DC's cluster id which learns the table by push-pull,
//! probes only managers (with the same SWIM/Lifeguard rules, helpers included) and
//! gossips nothing. Members answer an observer's probes without adding it, so a DC
//! cluster's membership stays exactly its managers and workers. This replaces the
//! original's ad-hoc cross-cluster probes with the one machine everyone already runs.

use crate::id::{Addr, ClusterId, DcId, Incarnation, NodeId, Role};
use crate::io::{Event, Output, Outputs};
use crate::membership::{self, Config, Identity, Membership, Mode};
use crate::rng::derive_seed;
use crate::time::Instant;
use crate::wire::{self, Channel};

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node: NodeId,
    pub role: Role,
    pub dc: DcId,
    pub addr: Addr,
    /// Membership seeds of the node's own cluster.
    pub seeds: Vec<Addr>,
    /// For gates: per DC, the addresses of that DC's managers to observe.
    pub observe: Vec<(DcId, Vec<Addr>)>,
    pub membership: Config,
    /// Starting incarnation (from the store: `stored + 10`, or 0 without one).
    pub incarnation: Incarnation,
    pub seed: u64,
}

pub enum Input<'a> {
    Datagram { from: Addr, bytes: &'a [u8] },
    Frame { from: Addr, bytes: &'a [u8] },
    Tick,
    Leave,
    LoopLag { ratio: f64 },
    HeardFrom(NodeId),
}

pub struct Node {
    role: Role,
    /// Own cluster first, then observers. A `Vec`, not an inline `SmallVec`: a machine
    /// is ~1.6 KB and most nodes have one (a simulation holds thousands of nodes).
    memberships: Vec<Membership>,
    decode_errors: u64,
    unknown_cluster: u64,
}

impl Node {
    /// Builds the node's machines and returns the join traffic they emit at `now`.
    pub fn new(cfg: NodeConfig, now: Instant) -> (Node, Outputs) {
        let own_cluster = match cfg.role {
            Role::Gate => ClusterId::GATES,
            _ => ClusterId::dc(cfg.dc),
        };
        let ident = |cluster| Identity {
            node: cfg.node,
            addr: cfg.addr,
            role: cfg.role,
            cluster,
        };
        let mut out = Outputs::new();
        let mut own = Membership::new(
            cfg.membership.clone(),
            ident(own_cluster),
            Mode::Member,
            cfg.incarnation,
            derive_seed(cfg.seed, 0),
            now,
        );
        out.extend(own.step(
            membership::Input::Join {
                seeds: cfg.seeds.clone(),
            },
            now,
        ));
        let mut memberships = Vec::with_capacity(1 + cfg.observe.len());
        memberships.push(own);
        if cfg.role == Role::Gate {
            for (i, (dc, seeds)) in cfg.observe.iter().enumerate() {
                let mut obs = Membership::new(
                    cfg.membership.clone(),
                    ident(ClusterId::dc(*dc)),
                    Mode::Observer {
                        probes: Role::Manager,
                    },
                    cfg.incarnation,
                    derive_seed(cfg.seed, 1 + i as u64),
                    now,
                );
                out.extend(obs.step(
                    membership::Input::Join {
                        seeds: seeds.clone(),
                    },
                    now,
                ));
                memberships.push(obs);
            }
        }
        (
            Node {
                role: cfg.role,
                memberships,
                decode_errors: 0,
                unknown_cluster: 0,
            },
            out,
        )
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn step(&mut self, input: Input<'_>, now: Instant) -> Outputs {
        let mut out = Outputs::new();
        match input {
            Input::Datagram { from, bytes } => {
                self.route(from, bytes, Channel::Datagram, now, &mut out)
            }
            Input::Frame { from, bytes } => self.route(from, bytes, Channel::Frame, now, &mut out),
            Input::Tick => {
                for m in self.memberships.iter_mut() {
                    if m.next_deadline().is_some_and(|d| d <= now) {
                        m.step_into(membership::Input::Tick, now, &mut out);
                    }
                }
            }
            Input::Leave => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::Leave, now, &mut out);
                }
            }
            Input::LoopLag { ratio } => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::LoopLag { ratio }, now, &mut out);
                }
            }
            Input::HeardFrom(node) => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::HeardFrom(node), now, &mut out);
                }
            }
        }
        self.share_health(now, &mut out);
        out
    }

    /// Observers borrow the node's health score from its own cluster's machine.
    fn share_health(&mut self, now: Instant, out: &mut Outputs) {
        let Some((own, observers)) = self.memberships.split_first_mut() else {
            return;
        };
        let score = own.lhm_score();
        for m in observers {
            if m.lhm_score() != score {
                m.step_into(membership::Input::SetLocalHealth { score }, now, out);
            }
        }
    }

    fn route(
        &mut self,
        from: Addr,
        bytes: &[u8],
        channel: Channel,
        now: Instant,
        out: &mut Outputs,
    ) {
        match wire::decode(bytes, channel) {
            Ok(env) => match self
                .memberships
                .iter_mut()
                .find(|m| m.identity().cluster == env.cluster)
            {
                Some(m) => m.handle(env, from, now, out),
                None => self.unknown_cluster += 1,
            },
            Err(error) => {
                self.decode_errors += 1;
                out.push(Output::Event(Event::DecodeFailed { error }));
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.memberships
            .iter()
            .filter_map(|m| m.next_deadline())
            .min()
    }

    /// The node's membership machines: its own cluster first, then observers.
    pub fn memberships(&self) -> &[Membership] {
        &self.memberships
    }

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }
    pub fn unknown_cluster(&self) -> u64 {
        self.unknown_cluster
    }
}
