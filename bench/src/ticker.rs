//! A precise periodic tick for fixed-rate sending: a `timerfd` (hrtimer, tens of µs of
//! wake-up latency) awaited through the tokio reactor. tokio's own timers round up to the
//! next millisecond, which would add up to 1 ms to every latency measured from the
//! scheduled send time.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create, timerfd_settime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub(crate) struct Ticker {
    fd: AsyncFd<OwnedFd>,
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

impl Ticker {
    /// Ticks first after `first`, then every `interval` (CLOCK_MONOTONIC).
    pub(crate) fn new(first: Duration, interval: Duration) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let spec = Itimerspec {
            it_interval: timespec(interval),
            it_value: timespec(first.max(Duration::from_nanos(1))),
        };
        timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
        // The safe constructor, deprecated in recent tokio because a borrowed fd could be
        // closed while registered; ours is an `OwnedFd` that the `AsyncFd` owns until drop.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fd, Interest::READABLE)?;
        Ok(Self { fd })
    }

    /// Waits for the next tick; returns how many intervals elapsed since the last read.
    pub(crate) async fn tick(&self) -> io::Result<u64> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8];
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf).map_err(io::Error::from))
            {
                Ok(Ok(_)) => return Ok(u64::from_ne_bytes(buf)),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks() {
        let t =
            Ticker::new(Duration::from_micros(100), Duration::from_micros(200)).expect("a timerfd");
        assert!(t.tick().await.expect("a tick") >= 1);
        assert!(t.tick().await.expect("a tick") >= 1);
    }
}
