//! Scenario tests of the Hub over the `Sim` harness, and property tests over random input
//! sequences. Every rule in the module docs and in DESIGN.md has a scenario here.

mod sim;

mod calls;
mod cluster;
mod identity;
mod limits;
mod messages;
mod props;
mod routing;
mod seed;
mod typing;
