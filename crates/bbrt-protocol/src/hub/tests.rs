//! Scenario tests of the Hub over the `Sim` harness, and property tests over random input
//! sequences. Every rule in the module docs and in DESIGN.md has a scenario here.

// `assert_eq!(sim.take_json(bob), [expected.clone()])` reads better than `from_ref`.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod sim;

mod calls;
mod cluster;
mod ice;
mod identity;
mod limits;
mod messages;
mod nodes;
mod props;
mod recovery;
mod routing;
mod seed;
mod site_events;
mod site_history;
mod typing;
