//! Scenario 2, `rate`: a fixed rate, latency from the scheduled send time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Ws, is_presence, message_text};

use super::shared::thread_of;
use super::traffic::Traffic;

/// The reading side of a fixed-rate client.
pub(super) async fn rate_reader(
    mut stream: SplitStream<Ws>,
    me: usize,
    sh: Rc<RefCell<Traffic>>,
    drain_end: Instant,
) {
    let thread = thread_of(me, sh.borrow().group);
    loop {
        tokio::select! {
            biased;
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if !is_presence(&t) {
                        sh.borrow_mut().delivered(me, &thread, &t);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if Instant::now() < drain_end {
                        sh.borrow_mut().faults.closed += 1;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            () = sleep_until(drain_end) => return,
        }
    }
}

/// The fixed-rate schedule: message k is due at start + k/rate, from client k mod n. A
/// timerfd ticks once per message period; every tick sends whatever is due.
pub(super) async fn rate_scheduler(
    mut sinks: Vec<SplitSink<Ws, Message>>,
    per_s: f64,
    sh: Rc<RefCell<Traffic>>,
) {
    let (start_ns, end_ns, group, now_ns) = {
        let s = sh.borrow();
        (s.start_ns, s.end_ns, s.group, s.now_ns())
    };
    let n = sinks.len();
    let period_ns = (1e9 / per_s).max(1.0);
    let interval = Duration::from_nanos(period_ns.min(1e6) as u64);
    let ticker = match crate::ticker::Ticker::new(
        Duration::from_nanos(start_ns.saturating_sub(now_ns)),
        interval,
    ) {
        Ok(t) => t,
        Err(e) => {
            let mut s = sh.borrow_mut();
            s.faults.error(&format!("load generator: no timerfd: {e}"));
            return;
        }
    };
    let mut k = 0u64;
    loop {
        if ticker.tick().await.is_err() {
            return;
        }
        let now = sh.borrow().now_ns();
        loop {
            let sched = start_ns + (k as f64 * period_ns) as u64;
            if sched >= end_ns {
                return;
            }
            if sched > now {
                break;
            }
            let me = (k % n as u64) as usize;
            let thread = thread_of(me, group);
            let frame = {
                let mut s = sh.borrow_mut();
                let Some(seq) = s.new_message(me) else { return };
                let sent = s.now_ns();
                let _ = s.lag.record(sent.saturating_sub(sched).max(1));
                s.sent_in_window += 1;
                s.proto.send_frame(&thread, &message_text(seq, sched, me))
            };
            if sinks[me].send(Message::text(frame)).await.is_err() {
                sh.borrow_mut().faults.closed += 1;
                return;
            }
            k += 1;
        }
    }
}
