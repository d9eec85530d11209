//! One node over real sockets (issue 8). The driver decides nothing: one task owns the
//! node's [`Node`] machine and feeds it what arrives (UDP datagrams, TCP frames), the
//! time (`sleep_until(next_deadline)`) and local commands, and carries out what it emits.
//!
//! Transport: the node binds one port for UDP and TCP. Frames travel on TCP connections
//! as a 4-byte big-endian length and the bytes; a dialer's first frame is its own
//! listening address, so the receiver knows which node a frame comes from (the peer's
//! source port is ephemeral). Outbound frames go through one writer task per peer that
//! connects with backoff and drops what it cannot deliver (the core re-sends what
//! matters); every queue is bounded. With a keyring (`crate::keyring`) datagrams and
//! frames are sealed with AES-256-GCM, and whatever no installed key opens is counted
//! and dropped before the machine sees it.

use crate::addr::{addr_of, main_addr_of_oob, oob_socket_of, socket_of};
use crate::admin;
use crate::keyring::Keyring;
use crate::recv_stamp::{wait_sample, StampedReceiver};
use crate::self_watch::{Sample, SelfWatch};
use crate::tls::Tls;
use meridian_core::io::{Event, Output, Outputs};
use meridian_core::jobs::{JobEvent, WorkflowIndex};
use meridian_core::journal;
use meridian_core::membership::member::Status;
use meridian_core::node::{Input, Node, NodeConfig};
use meridian_core::JobId;
use meridian_core::{Addr, Instant, NodeId, Role};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

/// Largest frame accepted or sent (a push-pull of a large cluster fits well inside).
pub const MAX_FRAME: usize = 16 << 20;
/// Frames queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 256;
/// Peers with a writer at most (writers that ended, idle for a minute, make room).
const MAX_PEERS: usize = 4096;
/// Inbound connections at most.
const MAX_CONNECTIONS: usize = 1024;
/// A writer with nothing to send for this long closes its connection and ends.
const IDLE: Duration = Duration::from_secs(60);

/// A node's UDP socket and TCP listener, bound to the same port, and with the
/// out-of-band probe channel on, its OOB UDP socket on that port + 100.
pub struct Bound {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
    oob: Option<UdpSocket>,
}

impl Bound {
    /// Bind UDP and TCP on `at`; with port 0, on a port free for both.
    pub async fn bind(at: SocketAddr) -> io::Result<Bound> {
        Self::bind_sockets(at, false).await
    }

    /// [`Bound::bind`], and the OOB socket on the port + 100 (membership.md §9; for
    /// `membership.oob`). With port 0, on a port free for all three.
    pub async fn bind_with_oob(at: SocketAddr) -> io::Result<Bound> {
        Self::bind_sockets(at, true).await
    }

    async fn bind_sockets(at: SocketAddr, with_oob: bool) -> io::Result<Bound> {
        let mut last = None;
        for _ in 0..32 {
            let udp = UdpSocket::bind(at).await?;
            let addr = udp.local_addr()?;
            let bound = async {
                let tcp = TcpListener::bind(addr).await?;
                let oob = if with_oob {
                    let at = oob_socket_of(addr_of(addr))
                        .ok_or_else(|| io::Error::other("no port 100 above the node's"))?;
                    Some(UdpSocket::bind(at).await?)
                } else {
                    None
                };
                io::Result::Ok((tcp, oob))
            };
            match bound.await {
                Ok((tcp, oob)) => {
                    return Ok(Bound {
                        udp,
                        tcp,
                        addr,
                        oob,
                    })
                }
                Err(e) if at.port() == 0 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port free for UDP, TCP and OOB")))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One row of `members`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub node: NodeId,
    pub addr: Option<SocketAddr>,
    pub role: Role,
    pub status: Status,
    pub incarnation: u32,
}

/// What the driver counts (what the core cannot see: the transport's own losses).
#[derive(Debug, Default)]
pub struct DriverStats {
    pub datagrams_in: AtomicU64,
    /// Datagrams no installed key opened (with a keyring): dropped unseen.
    pub datagrams_rejected: AtomicU64,
    /// Frames likewise (with a keyring, frames are sealed too).
    pub frames_rejected: AtomicU64,
    /// Connections refused by TLS: a failed handshake (no certificate, another CA), a
    /// peer role ours may not talk to, or plain frames to a node that requires TLS.
    pub tls_rejected: AtomicU64,
    pub frames_in: AtomicU64,
    /// Frames dropped: a full peer queue, an address no socket address encodes to, a
    /// connection that failed.
    pub frames_dropped: AtomicU64,
    /// Datagrams that could not be sent.
    pub send_errors: AtomicU64,
    /// Datagrams on the OOB socket (membership.md §9), and those dropped before the
    /// node saw them: oversize, unopened by the keyring, over the intake rate, from a
    /// port with no node port 100 below it, or with the node's OOB queue full.
    pub oob_in: AtomicU64,
    pub oob_dropped: AtomicU64,
    pub events: AtomicU64,
    /// `crate::self_watch`'s samples handed to the node, and the last of each (f64 bits).
    pub loop_lag_samples: AtomicU64,
    pub resource_samples: AtomicU64,
    pub last_loop_lag: AtomicU64,
    pub last_cpu_percent: AtomicU64,
    pub last_mem_percent: AtomicU64,
    /// Datagrams' and frames' waits handed to the node as latency samples
    /// (`crate::recv_stamp`), and the last one in ms (f64 bits).
    pub wait_samples: AtomicU64,
    pub last_wait_ms: AtomicU64,
}

enum Command {
    Members(oneshot::Sender<Vec<MemberRow>>),
    Leave(oneshot::Sender<()>),
    /// An operator request, and who asked (AD-24 limits each client apart).
    Admin(admin::Request, u64, oneshot::Sender<admin::Answer>),
    Metrics(oneshot::Sender<String>),
}

/// A running node.
pub struct NodeHandle {
    pub addr: SocketAddr,
    pub node: NodeId,
    pub stats: Arc<DriverStats>,
    cmd: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    accept: JoinHandle<()>,
    metrics: Option<JoinHandle<()>>,
}

impl NodeHandle {
    /// The node's own-cluster membership table.
    pub async fn members(&self) -> Vec<MemberRow> {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Members(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Graceful leave: the node announces it, keeps answering for `linger` (so the
    /// announcement spreads), then stops.
    pub async fn leave(self, linger: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
        tokio::time::sleep(linger).await;
        self.kill();
    }

    /// A crash: the task and its sockets go, nothing is announced.
    pub fn kill(self) {
        self.task.abort();
        self.accept.abort();
        if let Some(m) = self.metrics {
            m.abort();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// How a node runs, beyond its machine's configuration.
#[derive(Default)]
pub struct Options {
    /// Write the node's journal (every input with its instant and a digest of what the
    /// machine emitted: `meridian_core::journal`) here; flushed at every timer step and
    /// when the node leaves.
    pub record: Option<std::fs::File>,
    /// Seal every datagram with the primary key and drop any no installed key opens.
    pub keyring: Option<Keyring>,
    /// Serve Prometheus text metrics here (`crate::metrics`).
    pub metrics: Option<std::net::TcpListener>,
    /// Mutual TLS for frames (`crate::tls`): connections in the clear are refused, and so
    /// are peers whose certificate's role may not talk to ours.
    pub tls: Option<Tls>,
    /// A worker's stand-in workload: each workflow it starts runs for a duration in
    /// `[min, max]` ms (a deterministic pick per job and workflow), reports one completed
    /// item a second, then finishes.
    pub workload: Option<(u64, u64)>,
    /// Send the node this process's CPU and memory use each second (AD-18's resource
    /// signal, `crate::self_watch`). Off by default: it is the process's, shared by
    /// every node a process embeds; `meridian-node` (one node a process) turns it on.
    pub resources: bool,
}

/// Start `cfg`'s node on `bound` (its `addr` must be the bound address).
pub fn spawn(bound: Bound, cfg: NodeConfig) -> NodeHandle {
    spawn_with(bound, cfg, Options::default())
}

/// [`spawn`] with [`Options`].
pub fn spawn_with(bound: Bound, cfg: NodeConfig, opts: Options) -> NodeHandle {
    let Options {
        record,
        keyring,
        metrics,
        workload,
        tls,
        resources,
    } = opts;
    let stats = Arc::new(DriverStats::default());
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (frame_tx, frame_rx) = mpsc::channel(1024);
    let Bound {
        udp,
        tcp,
        addr,
        oob,
    } = bound;
    // With a keyring the cluster is closed: operators come from this host only.
    let admin_loopback_only = keyring.is_some();
    let accept = tokio::spawn(accept_loop(
        tcp,
        frame_tx,
        cmd_tx.clone(),
        admin_loopback_only,
        tls.clone(),
        stats.clone(),
    ));
    let metrics = metrics.map(|l| tokio::spawn(serve_metrics(l, cmd_tx.clone())));
    let node = cfg.node;
    let recorder = record.map(|f| Recorder(std::io::BufWriter::new(f)));
    let task = tokio::spawn(node_loop(
        Sockets {
            udp,
            oob: oob.map(Arc::new),
        },
        cfg,
        frame_rx,
        cmd_rx,
        stats.clone(),
        Shell {
            recorder,
            keyring,
            workload,
            tls,
            resources,
        },
    ));
    NodeHandle {
        addr,
        node,
        stats,
        cmd: cmd_tx,
        task,
        accept,
        metrics,
    }
}

/// The node's datagram sockets: the main one, and the OOB one if the channel is on.
struct Sockets {
    udp: UdpSocket,
    oob: Option<Arc<UdpSocket>>,
}

async fn node_loop(
    sockets: Sockets,
    cfg: NodeConfig,
    mut frames: mpsc::Receiver<FrameIn>,
    mut commands: mpsc::Receiver<Command>,
    stats: Arc<DriverStats>,
    shell: Shell,
) {
    let Shell {
        mut recorder,
        keyring,
        workload,
        tls,
        resources,
    } = shell;
    let base = tokio::time::Instant::now();
    let now = || Instant(base.elapsed().as_micros() as u64);
    let me = cfg.addr;
    let at = now();
    let recorded_cfg = recorder.is_some().then(|| cfg.clone());
    let (mut node, out) = Node::new(cfg, at);
    if let (Some(r), Some(config)) = (recorder.as_mut(), recorded_cfg) {
        r.write(&journal::Record::Start {
            version: journal::JOURNAL_VERSION,
            config: Box::new(config),
            at,
            digest: journal::digest(&out),
        });
    }
    // Every input goes through here: stepped, and journaled when recording.
    let mut step = |node: &mut Node, input: Input<'_>, at: Instant| -> Outputs {
        let recorded = recorder
            .is_some()
            .then(|| journal::RecordedInput::of(&input));
        let out = node.step(input, at);
        if let (Some(r), Some(input)) = (recorder.as_mut(), recorded) {
            let flush = matches!(
                input,
                journal::RecordedInput::Tick | journal::RecordedInput::Leave
            );
            r.write(&journal::Record::Step {
                at,
                input,
                digest: journal::digest(&out),
            });
            if flush {
                r.flush();
            }
        }
        out
    };
    let mut peers = Peers::new(me, stats.clone(), keyring.clone(), tls);
    // The OOB socket's reader: it hands datagrams over on their own queue, which the
    // loop below empties before anything else (the channel's point, §9).
    // The reader goes with this task (a crash or a leave aborts it), and with it the
    // OOB socket: the guard aborts it when this future is dropped.
    let (mut oob_in, _oob_reader) = match sockets.oob.clone() {
        Some(sock) => {
            let (tx, rx) = mpsc::channel(OOB_QUEUE);
            let reader = tokio::spawn(read_oob(sock, tx, keyring.clone(), stats.clone()));
            (Some(rx), Some(AbortOnDrop(reader)))
        }
        None => (None, None),
    };
    let keyring = keyring.as_ref();
    let (work_tx, mut work_rx) = mpsc::channel::<Work>(1024);
    let mut local = Local {
        events: crate::metrics::EventCounts::default(),
        work: work_tx,
        workload,
        finished: std::collections::VecDeque::new(),
    };
    emit(&sockets, &mut peers, &stats, keyring, &mut local, out).await;
    let mut buf = vec![0u8; 65_536];
    let mut watch = SelfWatch::new(tokio::time::Instant::now(), resources);
    let mut receiver = StampedReceiver::new(&sockets.udp);
    loop {
        if let Some((from, bytes)) = oob_in.as_mut().and_then(|rx| rx.try_recv().ok()) {
            let out = step(
                &mut node,
                Input::Oob {
                    from,
                    bytes: &bytes,
                },
                now(),
            );
            emit(&sockets, &mut peers, &stats, keyring, &mut local, out).await;
            continue;
        }
        let deadline = node
            .next_deadline()
            .map(|d| base + Duration::from_micros(d.0));
        let out = tokio::select! {
            Some((from, bytes)) = recv_oob(&mut oob_in) => {
                step(&mut node, Input::Oob { from, bytes: &bytes }, now())
            }
            r = receiver.recv(&sockets.udp, &mut buf) => match r {
                Ok((n, src, stamp)) => {
                    stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    let mut out = match keyring.map(|k| k.open(&buf[..n])) {
                        None => step(&mut node, Input::Datagram { from: addr_of(src), bytes: &buf[..n] }, now()),
                        Some(Ok(plain)) => step(&mut node, Input::Datagram { from: addr_of(src), bytes: &plain }, now()),
                        Some(Err(_)) => {
                            // Unauthenticated or undecryptable: counted, never seen.
                            stats.datagrams_rejected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    // AD-18: how long it waited, from the kernel's stamp to the end of
                    // its step.
                    if let Some(ms) = stamp.and_then(|s| waited(s, &stats)) {
                        out.extend(step(&mut node, Input::ProcessingLatency { ms }, now()));
                    }
                    out
                }
                // An ICMP error of an earlier send, on some platforms: not ours to act on.
                Err(_) => continue,
            },
            Some((from, bytes, read_at)) = frames.recv() => {
                stats.frames_in.fetch_add(1, Ordering::Relaxed);
                let mut out = match keyring.map(|k| k.open(&bytes)) {
                    None => step(&mut node, Input::Frame { from, bytes: &bytes }, now()),
                    Some(Ok(plain)) => step(&mut node, Input::Frame { from, bytes: &plain }, now()),
                    Some(Err(_)) => {
                        stats.frames_rejected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                // AD-18: from the frame's last byte read to the end of its step (its
                // wait on the node's queue; a full queue holds the connection's reader,
                // so a longer wait shows as later reads).
                if let Some(ms) = waited(read_at, &stats) {
                    out.extend(step(&mut node, Input::ProcessingLatency { ms }, now()));
                }
                out
            }
            _ = sleep_until(deadline) => step(&mut node, Input::Tick, now()),
            _ = tokio::time::sleep_until(watch.deadline()) => {
                match watch.fired(tokio::time::Instant::now()) {
                    Some(Sample::LoopLag { ratio }) => {
                        stats.loop_lag_samples.fetch_add(1, Ordering::Relaxed);
                        stats.last_loop_lag.store(ratio.to_bits(), Ordering::Relaxed);
                        step(&mut node, Input::LoopLag { ratio }, now())
                    }
                    Some(Sample::Resources { cpu_percent, mem_percent }) => {
                        stats.resource_samples.fetch_add(1, Ordering::Relaxed);
                        stats.last_cpu_percent.store(cpu_percent.to_bits(), Ordering::Relaxed);
                        stats.last_mem_percent.store(mem_percent.to_bits(), Ordering::Relaxed);
                        step(&mut node, Input::Resources { cpu_percent, mem_percent }, now())
                    }
                    None => continue,
                }
            }
            Some(w) = work_rx.recv() => match w {
                Work::Progress { job, workflow, completed, total } => step(
                    &mut node,
                    Input::WorkflowProgress { job, workflow, completed, total },
                    now(),
                ),
                Work::Finished { job, workflow, items } => step(
                    &mut node,
                    Input::WorkflowFinished { job, workflow, items },
                    now(),
                ),
            },
            c = commands.recv() => match c {
                Some(Command::Members(reply)) => {
                    let _ = reply.send(rows(&node));
                    continue;
                }
                Some(Command::Metrics(reply)) => {
                    let _ = reply.send(crate::metrics::render(&node, &stats, &local.events));
                    continue;
                }
                Some(Command::Admin(admin::Request::Submit(job), client, reply)) => {
                    let id = JobId(job.id.unwrap_or_else(|| fresh_job_id(me, now())));
                    let out = step(&mut node, job.input(id, client), now());
                    let state = submit_state(id, &out);
                    emit(&sockets, &mut peers, &stats, keyring, &mut local, out).await;
                    let _ = reply.send(admin::Answer::Submitted { job: id.0, state });
                    continue;
                }
                Some(Command::Admin(req, _, reply)) => {
                    let _ = reply.send(answer(&node, req, now(), &local));
                    continue;
                }
                Some(Command::Leave(reply)) => {
                    let out = step(&mut node, Input::Leave, now());
                    emit(&sockets, &mut peers, &stats, keyring, &mut local, out).await;
                    let _ = reply.send(());
                    continue;
                }
                // Every handle is gone: nobody can stop us any more but a crash.
                None => std::future::pending().await,
            },
        };
        emit(&sockets, &mut peers, &stats, keyring, &mut local, out).await;
    }
}

/// A frame off a peer's connection, and when its last byte was read.
type FrameIn = (Addr, Vec<u8>, SystemTime);

/// AD-18's latency sample for a message stamped `stamp` (`crate::recv_stamp`), counted
/// in `stats`.
fn waited(stamp: SystemTime, stats: &DriverStats) -> Option<f64> {
    let ms = wait_sample(stamp, SystemTime::now())?;
    stats.wait_samples.fetch_add(1, Ordering::Relaxed);
    stats.last_wait_ms.store(ms.to_bits(), Ordering::Relaxed);
    Some(ms)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn answer(node: &Node, req: admin::Request, now: Instant, local: &Local) -> admin::Answer {
    match req {
        // Handled by the loop (it steps the machine).
        admin::Request::Submit(_) => admin::Answer::Error {
            message: "submit is handled by the node loop".into(),
        },
        admin::Request::Jobs => match node.gate_jobs() {
            None => admin::Answer::Error {
                message: "only gates hold jobs".into(),
            },
            Some(jobs) => admin::Answer::Jobs {
                running: jobs
                    .into_iter()
                    .map(|j| admin::JobView {
                        job: j.job.0,
                        pending: j.pending,
                        timed_out_declared: j.timed_out_declared,
                        dcs: j
                            .dcs
                            .into_iter()
                            .map(|(dc, accepted, status)| admin::DcJobView {
                                dc: dc.0,
                                accepted,
                                status: format!("{status:?}").to_lowercase(),
                            })
                            .collect(),
                    })
                    .collect(),
                finished: local.finished.iter().cloned().collect(),
            },
        },
        admin::Request::Members => admin::Answer::Members {
            members: rows(node)
                .into_iter()
                .map(|r| admin::MemberView {
                    node: r.node.0,
                    addr: r.addr,
                    role: format!("{:?}", r.role).to_lowercase(),
                    status: format!("{:?}", r.status).to_lowercase(),
                    incarnation: r.incarnation,
                })
                .collect(),
        },
        admin::Request::Rtt { node: peer } => admin::Answer::Rtt {
            estimate: node.memberships().first().and_then(|m| {
                m.coordinates()
                    .estimate(NodeId(peer), now)
                    .map(|e| admin::RttView {
                        node: peer,
                        rtt_ms: e.rtt_ms,
                        sigma_ms: e.sigma_ms,
                        ucb_ms: e.ucb_ms,
                    })
            }),
        },
    }
}

fn rows(node: &Node) -> Vec<MemberRow> {
    let Some(own) = node.memberships().first() else {
        return Vec::new();
    };
    // The node itself first (as serf lists it), then its table.
    let me = own.identity();
    let mut v: Vec<MemberRow> = std::iter::once(MemberRow {
        node: me.node,
        addr: socket_of(me.addr),
        role: me.role,
        status: Status::Alive,
        incarnation: own.incarnation().0,
    })
    .chain(
        own.members()
            .filter(|m| m.id != me.node)
            .map(|m| MemberRow {
                node: m.id,
                addr: socket_of(own.addr_of(m)),
                role: m.role(),
                status: m.status,
                incarnation: m.inc.0,
            }),
    )
    .collect();
    v.sort_by_key(|r| r.node);
    v
}

/// Aborts a helper task when the task that owns it ends or is aborted.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// OOB datagrams waiting for the node loop at most; more are dropped on arrival.
const OOB_QUEUE: usize = 64;
/// OOB datagrams taken in a second at most, so a flood of them cannot starve the loop
/// that serves them first: twice what a node answers (membership.md §9: 100 a second)
/// leaves room for the answers to its own probes.
const OOB_INTAKE_PER_SEC: u32 = 200;

/// Read the OOB socket: drop what is oversize, unopened, over the intake rate or from a
/// port with no node below it; queue the rest, by the sender's main address.
async fn read_oob(
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<(Addr, Vec<u8>)>,
    keyring: Option<Keyring>,
    stats: Arc<DriverStats>,
) {
    let max = meridian_core::wire::oob::MAX_OOB_DATAGRAM;
    // One byte more than the largest datagram taken, so an oversize one shows.
    let mut buf = [0u8; meridian_core::wire::oob::MAX_OOB_DATAGRAM + 1];
    let mut window = (tokio::time::Instant::now(), 0u32);
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        stats.oob_in.fetch_add(1, Ordering::Relaxed);
        if window.0.elapsed() >= Duration::from_secs(1) {
            window = (tokio::time::Instant::now(), 0);
        }
        window.1 += 1;
        let opened = match keyring.as_ref() {
            None => Ok(buf[..n].to_vec()),
            Some(k) => k.open(&buf[..n]).map_err(|_| ()),
        };
        let taken = match (opened, main_addr_of_oob(src)) {
            (Ok(bytes), Some(from)) if n <= max && window.1 <= OOB_INTAKE_PER_SEC => {
                tx.try_send((from, bytes)).is_ok()
            }
            _ => false,
        };
        if !taken {
            stats.oob_dropped.fetch_add(1, Ordering::Relaxed);
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// The next queued OOB datagram; never, without the channel.
async fn recv_oob(rx: &mut Option<mpsc::Receiver<(Addr, Vec<u8>)>>) -> Option<(Addr, Vec<u8>)> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn emit(
    sockets: &Sockets,
    peers: &mut Peers,
    stats: &DriverStats,
    keyring: Option<&Keyring>,
    local: &mut Local,
    out: Outputs,
) {
    for o in out {
        match o {
            Output::Transmit { to, bytes } => {
                let bytes = match keyring {
                    Some(k) => k.seal(&bytes),
                    None => bytes,
                };
                let sent = match socket_of(to) {
                    Some(sa) => sockets.udp.send_to(&bytes, sa).await.is_ok(),
                    None => false,
                };
                if !sent {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Output::Oob { to, bytes } => {
                let bytes = match keyring {
                    Some(k) => k.seal(&bytes),
                    None => bytes,
                };
                let sent = match (sockets.oob.as_ref(), oob_socket_of(to)) {
                    (Some(sock), Some(sa)) => sock.send_to(&bytes, sa).await.is_ok(),
                    _ => false,
                };
                if !sent {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Output::Frame { to, bytes } => peers.send(to, bytes),
            Output::Event(e) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
                local.events.count(&e);
                tracing::debug!(event = ?e);
                match e {
                    // The node's own health, for operators at the default level: AD-18's
                    // grade (it sheds while not healthy) and Lifeguard's degradation.
                    Event::Overload { state } => {
                        tracing::info!(?state, "overload grade changed");
                    }
                    Event::Degradation { cluster, level } => {
                        tracing::info!(cluster = cluster.0, ?level, "degradation level changed");
                    }
                    Event::Job(JobEvent::WorkflowStarted { job, workflow, .. }) => {
                        if let Some(range) = local.workload {
                            tokio::spawn(run_workflow(job, workflow, range, local.work.clone()));
                        }
                    }
                    Event::Job(JobEvent::Finished { job, state }) => {
                        if local.finished.len() >= FINISHED_KEPT {
                            local.finished.pop_front();
                        }
                        local
                            .finished
                            .push_back((job.0, format!("{state:?}").to_lowercase()));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One writer task per peer, created on first use.
struct Peers {
    me: Addr,
    keyring: Option<Keyring>,
    tls: Option<Tls>,
    writers: HashMap<Addr, mpsc::Sender<Vec<u8>>>,
    stats: Arc<DriverStats>,
}

impl Peers {
    fn new(me: Addr, stats: Arc<DriverStats>, keyring: Option<Keyring>, tls: Option<Tls>) -> Peers {
        Peers {
            me,
            keyring,
            tls,
            writers: HashMap::new(),
            stats,
        }
    }

    fn send(&mut self, to: Addr, bytes: Vec<u8>) {
        let Some(sa) = socket_of(to) else {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.writers.get(&to).is_some_and(|w| w.is_closed()) {
            self.writers.remove(&to);
        }
        if !self.writers.contains_key(&to) {
            if self.writers.len() >= MAX_PEERS {
                self.writers.retain(|_, w| !w.is_closed());
                if self.writers.len() >= MAX_PEERS {
                    self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::spawn(writer(
                sa,
                self.me,
                rx,
                self.stats.clone(),
                self.tls.clone(),
            ));
            self.writers.insert(to, tx);
        }
        let bytes = match &self.keyring {
            Some(k) => k.seal(&bytes),
            None => bytes,
        };
        if self.writers[&to].try_send(bytes).is_err() {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connect (with backoff), introduce ourselves, then write frames until idle.
async fn writer(
    to: SocketAddr,
    me: Addr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<DriverStats>,
    tls: Option<Tls>,
) {
    let mut backoff = Duration::from_millis(100);
    'connect: loop {
        let connected = tokio::time::timeout(Duration::from_secs(5), connect(to, tls.as_ref()));
        let stream = match connected.await {
            Ok(Ok(s)) => s,
            failed => {
                if matches!(failed, Ok(Err(ConnectError::Refused))) {
                    stats.tls_rejected.fetch_add(1, Ordering::Relaxed);
                }
                // Unreachable: what waits is stale by the next attempt; drop it.
                while let Ok(_frame) = rx.try_recv() {
                    stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                }
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut stream = tokio::io::BufWriter::new(stream);
        if write_frame(&mut stream, me.as_bytes()).await.is_err() {
            continue;
        }
        backoff = Duration::from_millis(100);
        loop {
            let frame = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => return,
            };
            if write_frame(&mut stream, &frame).await.is_err() {
                stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                continue 'connect;
            }
        }
    }
}

/// A connection's write side, plain or TLS.
type Conn = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

enum ConnectError {
    Io,
    /// TLS refused it: bad certificate, or a role we may not talk to.
    Refused,
}

/// Dial `to`; with TLS, handshake and check the server's role.
async fn connect(to: SocketAddr, tls: Option<&Tls>) -> Result<Conn, ConnectError> {
    let tcp = TcpStream::connect(to).await.map_err(|_| ConnectError::Io)?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let s = tls
        .connector
        .connect(Tls::server_name(), tcp)
        .await
        .map_err(|_| ConnectError::Refused)?;
    if !tls.admits(s.get_ref().1.peer_certificates()) {
        return Err(ConnectError::Refused);
    }
    Ok(Box::new(s))
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::other("frame too large"));
    }
    w.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::other("frame too large"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn accept_loop(
    tcp: TcpListener,
    frames: mpsc::Sender<FrameIn>,
    commands: mpsc::Sender<Command>,
    admin_loopback_only: bool,
    tls: Option<Tls>,
    stats: Arc<DriverStats>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = tcp.accept().await else {
            continue;
        };
        let admin_allowed = !(admin_loopback_only || tls.is_some()) || peer.ip().is_loopback();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // too many connections: this one is closed
        };
        let frames = frames.clone();
        let commands = commands.clone();
        let tls = tls.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handled = tokio::time::timeout(Duration::from_secs(5), async {
                let mut first = [0u8; 1];
                stream.peek(&mut first).await.ok()?;
                Some(first[0])
            })
            .await;
            let Ok(Some(first)) = handled else { return };
            // A TLS handshake (record type 22) or our plain framing.
            if first == 0x16 {
                let Some(tls) = tls else { return };
                let accepted =
                    tokio::time::timeout(Duration::from_secs(5), tls.acceptor.accept(stream)).await;
                let Ok(Ok(mut s)) = accepted else {
                    stats.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if !tls.admits(s.get_ref().1.peer_certificates()) {
                    stats.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                serve_frames(&mut s, frames).await;
                return;
            }
            let mut stream = stream;
            // The dialer's listening address first (or the operator's hello).
            let hello = tokio::time::timeout(
                Duration::from_secs(5),
                read_frame(&mut stream, admin::ADMIN_HELLO.len()),
            )
            .await;
            let Some(hello) = hello.ok().and_then(|r| r.ok()) else {
                return;
            };
            if hello == admin::ADMIN_HELLO {
                if admin_allowed {
                    serve_admin(stream, client_id(peer.ip()), commands).await;
                }
                return;
            }
            if tls.is_some() {
                // Node frames in the clear to a node that requires TLS: refused.
                stats.tls_rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let Some(from) = Addr::new(&hello) else {
                return;
            };
            while let Ok(frame) = read_frame(&mut stream, MAX_FRAME).await {
                if frames.send((from, frame, SystemTime::now())).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A peer's hello (its listening address), then its frames.
async fn serve_frames<R: AsyncReadExt + Unpin>(r: &mut R, frames: mpsc::Sender<FrameIn>) {
    let hello = tokio::time::timeout(Duration::from_secs(5), read_frame(r, Addr::CAPACITY)).await;
    let Some(from) = hello.ok().and_then(|r| r.ok()).and_then(|b| Addr::new(&b)) else {
        return;
    };
    while let Ok(frame) = read_frame(r, MAX_FRAME).await {
        if frames.send((from, frame, SystemTime::now())).await.is_err() {
            return;
        }
    }
}

/// One operator request, answered by the node's task.
async fn serve_admin(mut stream: TcpStream, client: u64, commands: mpsc::Sender<Command>) {
    let Ok(Ok(bytes)) =
        tokio::time::timeout(Duration::from_secs(5), admin::read(&mut stream)).await
    else {
        return;
    };
    let answer = match serde_json::from_slice::<admin::Request>(&bytes) {
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            if commands
                .send(Command::Admin(req, client, tx))
                .await
                .is_err()
            {
                return;
            }
            match rx.await {
                Ok(a) => a,
                Err(_) => return,
            }
        }
        Err(e) => admin::Answer::Error {
            message: format!("bad request: {e}"),
        },
    };
    if let Ok(bytes) = serde_json::to_vec(&answer) {
        let _ = admin::write(&mut stream, &bytes).await;
    }
}

/// A journal being written (buffered; a write error stops the recording, not the node).
struct Recorder(std::io::BufWriter<std::fs::File>);

impl Recorder {
    fn write(&mut self, r: &journal::Record) {
        use std::io::Write;
        let _ = self.0.write_all(&journal::encode(r));
    }
    fn flush(&mut self) {
        use std::io::Write;
        let _ = self.0.flush();
    }
}

/// Prometheus scrapes: any request on the metrics listener gets the current page.
async fn serve_metrics(listener: std::net::TcpListener, commands: mpsc::Sender<Command>) {
    let Ok(listener) = listener
        .set_nonblocking(true)
        .and_then(|_| TcpListener::from_std(listener))
    else {
        return;
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let commands = commands.clone();
        tokio::spawn(async move {
            // Read the request head (at most 8 KiB, 5 s); its content does not matter.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            let read = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
            let (tx, rx) = oneshot::channel();
            if commands.send(Command::Metrics(tx)).await.is_err() {
                return;
            }
            let Ok(body) = rx.await else { return };
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// What the node task does beside feeding the machine: journal, seal, run workflows.
struct Shell {
    recorder: Option<Recorder>,
    keyring: Option<Keyring>,
    workload: Option<(u64, u64)>,
    tls: Option<Tls>,
    /// `Options::resources`.
    resources: bool,
}

/// Finished jobs a gate remembers for `jobs` (the machine forgets them at once).
const FINISHED_KEPT: usize = 1000;

/// The node task's own state beside the machine.
struct Local {
    events: crate::metrics::EventCounts,
    work: mpsc::Sender<Work>,
    workload: Option<(u64, u64)>,
    /// Recently finished jobs (gates): id and final state.
    finished: std::collections::VecDeque<(u64, String)>,
}

/// What a running workflow tells its node.
enum Work {
    Progress {
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        total: u64,
    },
    Finished {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
}

/// The stand-in workload: `U[min, max]` ms (picked from the job and workflow, so a
/// re-dispatched workflow takes as long), one item a second, then done.
async fn run_workflow(
    job: JobId,
    workflow: WorkflowIndex,
    (min, max): (u64, u64),
    tx: mpsc::Sender<Work>,
) {
    let pick = meridian_core::rng::splitmix64(job.0 ^ ((workflow as u64) << 40));
    let ms = min + pick % (max.saturating_sub(min) + 1);
    let total = (ms / 1000).max(1);
    for completed in 1..total {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let p = Work::Progress {
            job,
            workflow,
            completed,
            total,
        };
        if tx.send(p).await.is_err() {
            return;
        }
    }
    tokio::time::sleep(Duration::from_millis(ms.saturating_sub((total - 1) * 1000))).await;
    let _ = tx
        .send(Work::Finished {
            job,
            workflow,
            items: total,
        })
        .await;
}

/// The client an operator connection counts as for AD-24: its IP address (every
/// connection from one host shares one allowance, as a reconnecting client would).
/// IPv4 (and IPv4-mapped IPv6) is its 32 bits; IPv6 folds its halves together, with
/// the top bit set so that it never names an IPv4 client.
fn client_id(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4) as u64,
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u32::from(v4) as u64,
            None => {
                let bits = u128::from(v6);
                (bits >> 64) as u64 ^ bits as u64 ^ (1 << 63)
            }
        },
    }
}

/// A job id no other submission picks: the gate's address and the instant.
fn fresh_job_id(me: Addr, now: Instant) -> u64 {
    let mut h = 0u64;
    for b in me.as_bytes() {
        h = meridian_core::rng::splitmix64(h ^ *b as u64);
    }
    meridian_core::rng::splitmix64(h ^ now.0) >> 1
}

/// What a submission came to at once: sent to N DCs, failed, or waiting.
fn submit_state(job: JobId, out: &Outputs) -> String {
    for o in out {
        match o {
            Output::Event(Event::Job(JobEvent::Submitted { job: j, dcs })) if *j == job => {
                return format!("submitted to {dcs} DC(s)");
            }
            Output::Event(Event::Job(JobEvent::Finished { job: j, state })) if *j == job => {
                return format!("{state:?}").to_lowercase();
            }
            Output::Event(Event::Job(JobEvent::SubmissionShed { job: j })) if *j == job => {
                return "refused: the gate is overloaded (AD-22), try another gate".into();
            }
            Output::Event(Event::Job(JobEvent::RateLimited {
                job: Some(j),
                retry_after_ms,
                ..
            })) if *j == job => {
                return match retry_after_ms {
                    Some(ms) => format!(
                        "refused: rate limited (AD-24, job_submit), retry after {:.2} s",
                        *ms as f64 / 1000.0
                    ),
                    None => "refused: rate limited (AD-24, job_submit)".into(),
                };
            }
            _ => {}
        }
    }
    "pending: no datacenter classified yet".into()
}
