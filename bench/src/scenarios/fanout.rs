//! Scenario 1, `fanout`: closed-loop clients, each keeps its own messages in flight.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{FutureExt as _, SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Ws, is_presence, message_text};

use super::shared::thread_of;
use super::traffic::Traffic;

/// One closed-loop client: sends `in_flight` messages at the start, then one more each
/// time one of its own comes back.
pub(super) async fn closed_client(
    mut ws: Ws,
    me: usize,
    in_flight_target: usize,
    sh: Rc<RefCell<Traffic>>,
    drain_end: Instant,
) {
    let (start_ns, end_ns, epoch, thread) = {
        let s = sh.borrow();
        (s.start_ns, s.end_ns, s.epoch, thread_of(me, s.group))
    };
    let start = Instant::from_std(epoch + Duration::from_nanos(start_ns));
    let mut started = false;
    let mut in_flight = 0usize;
    loop {
        let wake = if started { drain_end } else { start };
        tokio::select! {
            biased;
            frame = ws.next() => {
                // Every frame already read is taken before answering, so that one write
                // carries all the replacements (a write per message made the load
                // generator, not the server, the limit).
                let mut frame = frame;
                let mut returned = 0usize;
                loop {
                    match frame {
                        Some(Ok(Message::Text(t))) => {
                            if !is_presence(&t)
                                && sh.borrow_mut().delivered(me, &thread, &t) == Some(me)
                            {
                                returned += 1;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            if Instant::now() < drain_end {
                                sh.borrow_mut().faults.closed += 1;
                            }
                            return;
                        }
                        Some(Ok(_)) => {}
                    }
                    match ws.next().now_or_never() {
                        Some(next) => frame = next,
                        None => break,
                    }
                }
                in_flight = in_flight.saturating_sub(returned);
                if returned > 0 && sh.borrow().now_ns() < end_ns {
                    let mut queued = false;
                    while in_flight < in_flight_target && queue_one(&mut ws, me, &thread, &sh).await {
                        in_flight += 1;
                        queued = true;
                    }
                    if queued && ws.flush().await.is_err() {
                        sh.borrow_mut().faults.closed += 1;
                        return;
                    }
                }
            }
            () = sleep_until(wake) => {
                if started {
                    return;
                }
                started = true;
                while in_flight < in_flight_target && queue_one(&mut ws, me, &thread, &sh).await {
                    in_flight += 1;
                }
                if ws.flush().await.is_err() {
                    sh.borrow_mut().faults.closed += 1;
                    return;
                }
            }
        }
    }
}

/// Sends one closed-loop message now; false when nothing more may be sent.
/// Queues one message of client `me` (sent at the next flush); false once the window is
/// over or the connection failed.
pub(super) async fn queue_one(
    ws: &mut Ws,
    me: usize,
    thread: &str,
    sh: &Rc<RefCell<Traffic>>,
) -> bool {
    let text = {
        let mut s = sh.borrow_mut();
        let now = s.now_ns();
        if now >= s.end_ns {
            return false;
        }
        let Some(seq) = s.new_message(me) else {
            return false;
        };
        s.sent_in_window += 1;
        message_text(seq, now, me)
    };
    let frame = sh.borrow().proto.send_frame(thread, &text);
    ws.feed(Message::text(frame)).await.is_ok()
}
