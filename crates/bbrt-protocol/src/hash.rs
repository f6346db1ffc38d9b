//! Hash maps keyed by ids no client chooses, with a faster hasher than std's SipHash.
//!
//! Every message touches a few dozen map entries (its connections, its recipients, its
//! thread's cache and window, the ids it was delivered under), and SipHash-1-3 was most of
//! their cost: with [`IdMap`] and [`IdSet`] on those maps the Hub runs 19–26 % fewer
//! instructions per message (`bench/hub-instructions.sh`, `docs/performance.md`).
//!
//! foldhash is fast but does not claim to resist HashDoS, so these are only for keys that
//! the driver assigns (connections, credentials, requests), that the site or another node
//! vouches for (verified users, stored message ids, threads a member joined, nodes), or
//! that the Hub derives from those. A key a client picks freely (a thread it asks to join
//! before membership is known, a `clientMessageId`, a recipient it names, an IP address)
//! stays in a std `HashMap`, whose per-process random SipHash key an attacker cannot
//! collide against. (The embedded development site trusts any user id a client names; it
//! is not for the open internet, and neither are its users' maps.)

/// A `HashMap` for keys no client chooses (see the module docs).
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` for keys no client chooses (see the module docs).
pub(crate) type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
