//! The scenarios of issue 6. Each starts a fresh server process, drives it from this
//! single-threaded load generator and returns one [`Record`](crate::record::Record).
//!
//! Every loop here is bounded in count and in time: connection attempts by a target and a
//! failure streak, traffic by its window, draining by a deadline.

mod cluster;
mod connections;
mod fanout;
mod ramp;
mod rate;
mod shared;
mod site;
mod storm;
mod traffic;

pub(crate) use cluster::{Cluster, ONE_NODE, ONE_NODE_REDIS, TWO_NODES, cluster, cluster_scenario};
pub(crate) use connections::{Setup, connections};
pub(crate) use ramp::{Ramp, ramp, ramp_scenario};
pub(crate) use shared::Common;
pub(crate) use site::{SiteBurst, site_burst};
pub(crate) use storm::{Storm, storm};
pub(crate) use traffic::{Load, Pace, traffic};
