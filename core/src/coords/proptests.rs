//! Coordinates stay finite and bounded whatever the samples and peers (issue 3,
//! acceptance 1): absurd RTTs, absurd or hostile peer coordinates.

use super::*;
use crate::id::NodeId;
use crate::rng::DetRng;
use crate::time::Instant;
use core::time::Duration;
use proptest::prelude::*;

fn wire() -> impl Strategy<Value = WireCoord> {
    (
        prop::array::uniform8(any::<i32>()),
        any::<u32>(),
        any::<i32>(),
        any::<u16>(),
    )
        .prop_map(|(vec, height, adjustment, error)| WireCoord {
            vec,
            height,
            adjustment,
            error,
        })
}

proptest! {
    #[test]
    fn coordinates_stay_finite_and_bounded(
        steps in prop::collection::vec((0u32..4, wire(), any::<u64>()), 1..200),
        seed in any::<u64>(),
    ) {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(seed);
        let mut eng = CoordEngine::new(cfg, 8, &mut rng);
        for (i, (peer, w, rtt_us)) in steps.into_iter().enumerate() {
            let now = Instant::ZERO + Duration::from_secs(i as u64);
            let node = NodeId(peer);
            eng.observe(node, &w, now);
            let _ = eng.sample(node, Duration::from_micros(rtt_us), now, &mut rng);
            let own = eng.own();
            prop_assert!(own.is_valid(&cfg), "{own:?}");
            for p in 0..4 {
                let e = eng.estimate(NodeId(p), now);
                if let Some(e) = e {
                    prop_assert!(e.rtt_ms.is_finite() && e.rtt_ms >= 0.0);
                    prop_assert!((1.0..=10_000.0).contains(&e.ucb_ms));
                }
            }
            let q = eng.quality(now);
            prop_assert!((0.0..=1.0).contains(&q));
        }
    }
}
