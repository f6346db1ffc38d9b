//! What the fake site holds: users, credentials, threads with their recipient rows and
//! messages, the plugin's key table, and the faults and pauses to come.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::time::now_unix;

use super::filters::kses;
use super::{FakeMessage, Fault, LoggedRequest};

/// A row of the plugin's key table (`{prefix}bbrt_send_keys`).
#[derive(Clone)]
pub(super) enum KeyRow {
    /// A request owns the key and is creating the message.
    Pending { fingerprint: String },
    /// The key's message: (thread, message).
    Complete {
        fingerprint: String,
        thread: u64,
        message: u64,
    },
}

impl KeyRow {
    pub(super) fn fingerprint(&self) -> &str {
        match self {
            Self::Pending { fingerprint } | Self::Complete { fingerprint, .. } => fingerprint,
        }
    }
}

pub(super) struct User {
    pub(super) id: u64,
    pub(super) login: String,
    pub(super) email: String,
    pub(super) display_name: String,
    pub(super) first_name: String,
    pub(super) app_passwords: Vec<String>,
}

#[derive(Clone)]
pub(super) struct Row {
    pub(super) row_id: u64,
    pub(super) user: u64,
    pub(super) unread: u32,
}

pub(super) struct Thread {
    pub(super) id: u64,
    pub(super) rows: Vec<Row>,
    pub(super) messages: Vec<FakeMessage>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) users: Vec<User>,
    pub(super) bearer: HashMap<String, u64>,
    pub(super) access_tokens: HashMap<String, u64>,
    pub(super) cookies: HashMap<String, (u64, String)>,
    pub(super) revoked: BTreeSet<String>,
    pub(super) threads: BTreeMap<u64, Thread>,
    pub(super) next_message: u64,
    pub(super) next_row: u64,
    pub(super) faults: VecDeque<Fault>,
    pub(super) latency: Duration,
    /// Requests arriving before this wait for it, then are done (a paused PHP).
    pub(super) paused_until: Option<tokio::time::Instant>,
    pub(super) log: Vec<LoggedRequest>,
    pub(super) app_password_trap: bool,
    /// The API root's `namespaces`.
    pub(super) namespaces: Vec<String>,
    /// When set, every REST request answers an HTML page with this status (a site whose
    /// REST API is not at this URL: plain permalinks, a wrong path).
    pub(super) no_rest_api: Option<u16>,
    pub(super) moderators: BTreeSet<u64>,
    /// Whether the companion plugin is active (its route and namespace).
    pub(super) plugin: bool,
    /// The plugin's key table: (sender, key) → row.
    pub(super) send_keys: HashMap<(u64, String), KeyRow>,
    /// How long a request waits for a pending key before answering
    /// `bbrt_send_in_progress` (the plugin's `bbrt_in_progress_wait_ms`).
    pub(super) in_progress_wait: Duration,
    /// The (thread, message) the last successful create stored.
    pub(super) last_created: Option<(u64, u64)>,
    /// Login sessions, `(user, session token)`: a site credential is good while its
    /// session is here (logout removes it, as `WP_Session_Tokens::destroy` does).
    pub(super) sessions: BTreeSet<(u64, String)>,
    /// The site-only key that signs site credentials (bbrt never holds it).
    pub(super) site_key: [u8; 32],
    pub(super) next_session: u64,
}

impl State {
    /// User `id`: ids are handed out as 1, 2, 3… (never removed), so the index is the id.
    pub(super) fn user(&self, id: u64) -> Option<&User> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.users.get(index).filter(|u| u.id == id)
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) in_flight: AtomicUsize,
    pub(super) max_in_flight: AtomicUsize,
    /// When the last request was answered (its handler returned).
    pub(super) last_answer: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) fn store_message(
    s: &mut State,
    thread: u64,
    sender: u64,
    subject: &str,
    text: &str,
) -> u64 {
    s.next_message += 1;
    let id = s.next_message;
    let message = FakeMessage {
        id,
        sender,
        subject: subject.to_owned(),
        stored: kses(text),
        sent_at: now_unix(),
    };
    if let Some(t) = s.threads.get_mut(&thread) {
        t.messages.push(message);
    }
    id
}

pub(super) struct InFlight<'a>(pub(super) &'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        *self
            .0
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now());
    }
}

pub(super) fn total_unread(s: &State, user: u64) -> u32 {
    s.threads
        .values()
        .flat_map(|t| &t.rows)
        .filter(|r| r.user == user)
        .map(|r| r.unread)
        .sum()
}

pub(super) fn user_name(s: &State, id: u64) -> (String, String) {
    s.user(id).map_or_else(
        || (String::new(), String::new()),
        |u| (u.first_name.clone(), u.login.clone()),
    )
}

pub(super) fn is_participant(t: &Thread, user: u64) -> bool {
    t.rows.iter().any(|r| r.user == user)
}
