//! [`ClaimTable`]: the coordinator's claims, as one set of rules.
//!
//! - **Sends** (`clientMessageId`): the first claim is granted ([`CoordResponse::Claimed`])
//!   and held in flight; a claim while it is held waits ([`Claimed::Held`]) until the
//!   holder records its outcome or the hold expires (the holder died). A stored send
//!   answers its receipt ([`CoordResponse::Done`]); an unconfirmed one is granted again
//!   with "look for it first" ([`CoordResponse::Unconfirmed`], keeping the earliest time);
//!   a failed one is released. A claim whose parameters differ from the recorded send's is
//!   a reused id ([`CoordResponse::Conflict`]).
//! - **Answers** (calls): the first device to claim wins, and wins again if it asks again;
//!   every other device loses.
//!
//! Records keep a digest of the send's parameters, never the text: the caller chooses the
//! digest ([`SendDigest`]): the Hub's fingerprint itself in the simulator, a keyed digest
//! in the server.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::hub::{CoordRequest, CoordResponse, SendFingerprint, SendOutcome, SendReceipt};
use crate::ids::{CallId, ClientMessageId, DeviceRef, UserId};

/// Sweep expired entries once every this many requests.
const SWEEP_EVERY: u64 = 1024;

/// What a record keeps of a send's parameters, to tell a retry from a reused id.
pub trait SendDigest: Clone + fmt::Debug {
    /// Whether `self` and `other` name the same send parameters.
    fn same_send(&self, other: &Self) -> bool;
}

/// The simulator's digest: the fingerprint itself (it stays in memory).
impl SendDigest for SendFingerprint {
    fn same_send(&self, other: &Self) -> bool {
        self == other
    }
}

/// How long claims and records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTtls {
    /// A send claimed and not finished (its holder may have died).
    pub in_flight: Duration,
    /// A stored or unconfirmed send's record.
    pub record: Duration,
    /// The winner of a call's answer.
    pub answer: Duration,
}

impl ClaimTtls {
    /// The same lifetime for everything.
    pub fn all(ttl: Duration) -> Self {
        Self {
            in_flight: ttl,
            record: ttl,
            answer: ttl,
        }
    }
}

/// The table's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claimed {
    /// The coordinator's answer.
    Answer(CoordResponse),
    /// Another holder is sending this message: ask again when it finished, or at `until`
    /// at the latest (the hold expires then).
    Held {
        /// When the hold expires.
        until: Instant,
    },
}

#[derive(Debug)]
enum Record<D> {
    InFlight {
        until: Instant,
    },
    Done {
        until: Instant,
        receipt: SendReceipt,
        digest: D,
    },
    /// The outcome is unknown: the next claim is granted with "reconcile first".
    Unconfirmed {
        until: Instant,
        since_unix_secs: i64,
        digest: D,
    },
}

impl<D> Record<D> {
    fn until(&self) -> Instant {
        match self {
            Self::InFlight { until }
            | Self::Done { until, .. }
            | Self::Unconfirmed { until, .. } => *until,
        }
    }
}

/// Claims of sends and answers, with their lifetimes. See the module docs.
#[derive(Debug)]
pub struct ClaimTable<D> {
    sends: HashMap<(UserId, ClientMessageId), Record<D>>,
    answers: HashMap<CallId, (DeviceRef, Instant)>,
    ttls: ClaimTtls,
    requests: u64,
}

impl<D: SendDigest> ClaimTable<D> {
    /// An empty table.
    pub fn new(ttls: ClaimTtls) -> Self {
        Self {
            sends: HashMap::new(),
            answers: HashMap::new(),
            ttls,
            requests: 0,
        }
    }

    /// Answers `request` at `now` (`now_unix`: the wall clock, Unix seconds, which an
    /// unconfirmed record notes). `digest` makes a record's digest of a fingerprint.
    pub fn request(
        &mut self,
        now: Instant,
        now_unix: i64,
        request: &CoordRequest,
        digest: impl FnOnce(SendFingerprint) -> D,
    ) -> Claimed {
        self.sweep(now);
        match request {
            CoordRequest::ClaimSend {
                user,
                client_message_id,
                fingerprint,
            } => self.claim_send(
                now,
                (user.clone(), client_message_id.clone()),
                digest(*fingerprint),
            ),
            CoordRequest::FinishSend {
                user,
                client_message_id,
                fingerprint,
                outcome,
            } => {
                let key = (user.clone(), client_message_id.clone());
                let until = now + self.ttls.record;
                let digest = digest(*fingerprint);
                match outcome {
                    SendOutcome::Stored(receipt) => {
                        let receipt = receipt.clone();
                        let done = Record::Done {
                            until,
                            receipt,
                            digest,
                        };
                        self.sends.insert(key, done);
                    }
                    SendOutcome::Unconfirmed { since_unix_secs } => {
                        let since_unix_secs = since_unix_secs.map_or(now_unix, |s| s.min(now_unix));
                        let record = Record::Unconfirmed {
                            until,
                            since_unix_secs,
                            digest,
                        };
                        self.sends.insert(key, record);
                    }
                    SendOutcome::Failed => {
                        self.sends.remove(&key);
                    }
                }
                Claimed::Answer(CoordResponse::Ok)
            }
            CoordRequest::ClaimAnswer { call, device } => {
                Claimed::Answer(self.claim_answer(now, call, device))
            }
            // Not a claim: `SharedWindows` answers these.
            CoordRequest::Sequence { .. }
            | CoordRequest::ReadWindow { .. }
            | CoordRequest::DeletedFor { .. } => Claimed::Answer(CoordResponse::Unavailable),
        }
    }

    fn claim_send(&mut self, now: Instant, key: (UserId, ClientMessageId), digest: D) -> Claimed {
        let answer = match self.sends.get(&key).filter(|r| r.until() > now) {
            Some(Record::Done { digest: d, .. } | Record::Unconfirmed { digest: d, .. })
                if !d.same_send(&digest) =>
            {
                CoordResponse::Conflict
            }
            Some(Record::Done { receipt, .. }) => CoordResponse::Done(receipt.clone()),
            Some(Record::InFlight { until }) => return Claimed::Held { until: *until },
            Some(Record::Unconfirmed {
                since_unix_secs, ..
            }) => CoordResponse::Unconfirmed {
                since_unix_secs: *since_unix_secs,
            },
            None => CoordResponse::Claimed,
        };
        if matches!(
            answer,
            CoordResponse::Claimed | CoordResponse::Unconfirmed { .. }
        ) {
            let until = now + self.ttls.in_flight;
            self.sends.insert(key, Record::InFlight { until });
        }
        Claimed::Answer(answer)
    }

    fn claim_answer(&mut self, now: Instant, call: &CallId, device: &DeviceRef) -> CoordResponse {
        match self.answers.get(call) {
            Some((winner, until)) if *until > now => {
                if winner == device {
                    CoordResponse::Won
                } else {
                    CoordResponse::Lost
                }
            }
            _ => {
                let until = now + self.ttls.answer;
                self.answers.insert(call.clone(), (device.clone(), until));
                CoordResponse::Won
            }
        }
    }

    /// Drops expired entries now and then.
    fn sweep(&mut self, now: Instant) {
        self.requests += 1;
        if !self.requests.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        self.sends.retain(|_, r| r.until() > now);
        self.answers.retain(|_, (_, until)| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MessageId, NodeId, ThreadId};

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: fmt::Debug,
    {
        s.parse().expect("valid id")
    }

    fn claim(text: &str) -> CoordRequest {
        CoordRequest::ClaimSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: SendFingerprint::of(Some(&id("t1")), None, text),
        }
    }

    fn finish(outcome: SendOutcome) -> CoordRequest {
        CoordRequest::FinishSend {
            user: id("u1"),
            client_message_id: id("c1"),
            fingerprint: SendFingerprint::of(Some(&id("t1")), None, "hi"),
            outcome,
        }
    }

    const TTLS: ClaimTtls = ClaimTtls {
        in_flight: Duration::from_secs(30),
        record: Duration::from_secs(600),
        answer: Duration::from_secs(60),
    };

    struct Table {
        table: ClaimTable<SendFingerprint>,
        now: Instant,
    }

    impl Table {
        fn new() -> Self {
            // The one real clock reading: every other instant is derived from it.
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            Self {
                table: ClaimTable::new(TTLS),
                now,
            }
        }

        fn ask(&mut self, request: &CoordRequest) -> Claimed {
            self.table.request(self.now, 1_000, request, |f| f)
        }

        fn answer(&mut self, request: &CoordRequest) -> CoordResponse {
            match self.ask(request) {
                Claimed::Answer(answer) => answer,
                held => panic!("expected an answer, got {held:?}"),
            }
        }
    }

    #[test]
    fn a_held_claim_waits_until_it_is_finished_or_expires() {
        let mut t = Table::new();
        assert_eq!(t.answer(&claim("hi")), CoordResponse::Claimed);
        let until = t.now + TTLS.in_flight;
        assert_eq!(t.ask(&claim("hi")), Claimed::Held { until });
        t.now = until;
        assert_eq!(
            t.answer(&claim("hi")),
            CoordResponse::Claimed,
            "a holder that never finished loses its claim"
        );
        assert_eq!(t.answer(&finish(SendOutcome::Failed)), CoordResponse::Ok);
        assert_eq!(t.answer(&claim("hi")), CoordResponse::Claimed, "released");
    }

    #[test]
    fn records_answer_until_they_expire() {
        let mut t = Table::new();
        t.answer(&claim("hi"));
        let receipt = SendReceipt {
            id: id::<MessageId>("m1"),
            thread: id::<ThreadId>("t1"),
        };
        t.answer(&finish(SendOutcome::Stored(receipt.clone())));
        assert_eq!(t.answer(&claim("hi")), CoordResponse::Done(receipt));
        assert_eq!(t.answer(&claim("bye")), CoordResponse::Conflict);
        t.now += TTLS.record;
        assert_eq!(t.answer(&claim("bye")), CoordResponse::Claimed, "forgotten");
    }

    #[test]
    fn an_unconfirmed_record_keeps_the_earliest_time_and_is_claimed_again() {
        let mut t = Table::new();
        t.answer(&claim("hi"));
        let unconfirmed = |since| SendOutcome::Unconfirmed {
            since_unix_secs: since,
        };
        t.answer(&finish(unconfirmed(Some(2_000))));
        assert_eq!(
            t.answer(&claim("hi")),
            CoordResponse::Unconfirmed {
                since_unix_secs: 1_000
            },
            "never later than now"
        );
        assert!(
            matches!(t.ask(&claim("hi")), Claimed::Held { .. }),
            "the reconciling retry holds the claim"
        );
        t.answer(&finish(unconfirmed(Some(900))));
        assert_eq!(t.answer(&claim("bye")), CoordResponse::Conflict);
        assert_eq!(
            t.answer(&claim("hi")),
            CoordResponse::Unconfirmed {
                since_unix_secs: 900
            }
        );
    }

    #[test]
    fn the_first_answer_wins_until_it_expires() {
        let mut t = Table::new();
        let answer = |conn| CoordRequest::ClaimAnswer {
            call: id("n1-1"),
            device: DeviceRef {
                node: id::<NodeId>("n1"),
                conn,
            },
        };
        assert_eq!(t.answer(&answer(1)), CoordResponse::Won);
        assert_eq!(t.answer(&answer(2)), CoordResponse::Lost);
        assert_eq!(t.answer(&answer(1)), CoordResponse::Won);
        t.now += TTLS.answer;
        assert_eq!(t.answer(&answer(2)), CoordResponse::Won);
    }

    #[test]
    fn expired_entries_are_swept() {
        let mut t = Table::new();
        t.answer(&claim("hi"));
        t.now += TTLS.in_flight;
        for _ in 0..SWEEP_EVERY {
            t.answer(&CoordRequest::ClaimAnswer {
                call: id("n1-2"),
                device: DeviceRef {
                    node: id::<NodeId>("n1"),
                    conn: 1,
                },
            });
        }
        assert!(t.table.sends.is_empty(), "{:?}", t.table.sends);
    }
}
