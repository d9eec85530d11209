//! How long each datagram waited to be handled: AD-18's latency sample
//! (`Input::ProcessingLatency`, backpressure.md §2).
//!
//! The wait that matters starts when the datagram reaches the host, not when the loop
//! reads it: a busy loop leaves datagrams in the socket's buffer, and a clock read at
//! `recv` would never see that. So on Linux the main UDP socket asks the kernel for
//! receive timestamps (`SO_TIMESTAMPNS`, read with `recvmsg`), and the wait is from that
//! stamp to the end of the node's step. Elsewhere there is no stamp and no sample.
//! (Linux turns stamping on for the whole system a moment after the first socket asks;
//! a datagram that arrives within that moment is stamped when it is read, so its wait
//! reads short. That errs on the side of not shedding, once, at start.)
//! A frame is stamped when its connection's task has read its last byte: its wait is
//! its time on the node's queue (a full queue holds the readers back, so the kernel's
//! buffer is not measured for frames).
//!
//! Waits under [`WAIT_FLOOR_MS`] are reported as the floor. AD-18's delta signal is
//! relative (`(avg - baseline) / baseline`): fed the tens of microseconds an idle
//! node's datagrams wait, scheduler noise alone would double "the baseline" and grade
//! an idle node overloaded, and it would shed. Below 5 ms a wait is noise, not load
//! (an intra-DC round trip is ~1 ms and the protocol's timeouts are hundreds of ms).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;

/// The smallest wait reported to the node, in ms.
pub const WAIT_FLOOR_MS: f64 = 5.0;

/// Longer "waits" are a clock stepped forward (the stamp is wall-clock time), not a
/// datagram that waited: no sample. A loop stalled that long shows in its loop lag.
const WAIT_CEILING: Duration = Duration::from_secs(60);

/// The latency sample for a datagram the kernel stamped `stamp` and the node finished
/// handling at `now`: `None` when the wall clock stepped in between.
pub fn wait_sample(stamp: SystemTime, now: SystemTime) -> Option<f64> {
    let waited = now.duration_since(stamp).ok()?;
    (waited <= WAIT_CEILING).then(|| (waited.as_secs_f64() * 1000.0).max(WAIT_FLOOR_MS))
}

/// The main UDP socket's reader, with the kernel's receive timestamp when it gives one.
pub struct StampedReceiver {
    /// Whether the socket was set up to stamp (Linux).
    stamping: bool,
    #[cfg(target_os = "linux")]
    control: Vec<u8>,
}

impl StampedReceiver {
    /// Asks the kernel to stamp what `sock` receives (where it can).
    pub fn new(sock: &UdpSocket) -> StampedReceiver {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
            StampedReceiver {
                stamping: setsockopt(sock, ReceiveTimestampns, &true).is_ok(),
                control: nix::cmsg_space!(nix::sys::time::TimeSpec),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = sock;
            StampedReceiver { stamping: false }
        }
    }

    /// Whether datagrams come with stamps.
    pub fn stamping(&self) -> bool {
        self.stamping
    }

    /// `recv_from`, plus the datagram's receive stamp when there is one. Cancel-safe
    /// like `recv_from`: a datagram is taken off the socket only by a call that returns.
    pub async fn recv(
        &mut self,
        sock: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
        #[cfg(target_os = "linux")]
        if self.stamping {
            let control = &mut self.control;
            return sock
                .async_io(tokio::io::Interest::READABLE, || {
                    recv_linux(sock, buf, control)
                })
                .await;
        }
        let (n, from) = sock.recv_from(buf).await?;
        Ok((n, from, None))
    }
}

#[cfg(target_os = "linux")]
fn recv_linux(
    sock: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(control), MsgFlags::empty())
            .map_err(io::Error::from)?;
    let from = msg
        .address
        .as_ref()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(*v4))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
        })
        .ok_or_else(|| io::Error::other("a datagram from no IP address"))?;
    let stamp = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(ts) => Some(
                SystemTime::UNIX_EPOCH
                    + Duration::new(ts.tv_sec().try_into().ok()?, ts.tv_nsec().try_into().ok()?),
            ),
            _ => None,
        })
    });
    Ok((msg.bytes, from, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_floored_and_clock_steps_give_no_sample() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ms = |n| Duration::from_millis(n);
        // Idle waits are noise: the floor.
        assert_eq!(wait_sample(t, t + Duration::from_micros(40)), Some(5.0));
        assert_eq!(wait_sample(t, t + ms(250)), Some(250.0));
        // The clock stepped back, or far forward.
        assert_eq!(wait_sample(t + ms(1), t), None);
        assert_eq!(wait_sample(t, t + Duration::from_secs(61)), None);
    }

    #[tokio::test]
    async fn datagrams_arrive_with_their_receive_stamps_on_linux() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rx = StampedReceiver::new(&a);
        assert_eq!(rx.stamping(), cfg!(target_os = "linux"));
        let mut buf = [0u8; 64];
        // Linux turns receive stamping on for the whole system a moment after the first
        // socket asks (a deferred static key); a datagram that arrives within that moment
        // is stamped when it is read. One datagram goes through first.
        b.send_to(b"warm-up", a.local_addr().unwrap())
            .await
            .unwrap();
        rx.recv(&a, &mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = SystemTime::now();
        b.send_to(b"hello", a.local_addr().unwrap()).await.unwrap();
        // The datagram waits in the buffer; the stamp says when it arrived.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (n, from, stamp) = rx.recv(&a, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, b.local_addr().unwrap());
        if cfg!(target_os = "linux") {
            let stamp = stamp.expect("stamped");
            assert!(stamp >= before - Duration::from_millis(5));
            let waited = wait_sample(stamp, SystemTime::now()).unwrap();
            assert!(waited >= 45.0, "{waited}");
        } else {
            assert_eq!(stamp, None);
        }
    }
}
