//! The effects sink: what a subsystem asks of the world. Outputs for the driver, timers and
//! counters live here, apart from every subsystem's state, so a subsystem method takes
//! `&mut Effects` beside its own `&mut self` and the borrow shows what it touches.

use std::collections::VecDeque;

use bytes::Bytes;

use super::broker::{BrokerEvent, BrokerMessage};
use super::output::Output;
use super::stats::HubStats;
use super::timer::TimerTable;
use crate::ids::{ConnId, InstanceId, NodeId};

/// Who this Hub publishes as, when it is part of a cluster.
#[derive(Debug, Clone)]
struct Origin {
    node: NodeId,
    instance: InstanceId,
}

/// Outputs, timers and counters.
#[derive(Debug)]
pub(super) struct Effects {
    pub(super) outputs: VecDeque<Output>,
    pub(super) timers: TimerTable,
    pub(super) stats: HubStats,
    /// `None` on a single node: nothing is published.
    origin: Option<Origin>,
}

impl Effects {
    /// A sink that publishes as `node`/`instance` if `cluster`.
    pub(super) fn new(cluster: bool, node: &NodeId, instance: &InstanceId) -> Self {
        let origin = cluster.then(|| Origin {
            node: node.clone(),
            instance: instance.clone(),
        });
        Self {
            outputs: VecDeque::new(),
            timers: TimerTable::default(),
            stats: HubStats::default(),
            origin,
        }
    }

    /// Sends `frame` to `conns` (the caller keeps only live ones); sorts and deduplicates
    /// them, counts the deliveries.
    pub(super) fn send(&mut self, mut conns: Vec<ConnId>, frame: Bytes) {
        conns.sort_unstable();
        conns.dedup();
        if conns.is_empty() {
            return;
        }
        self.stats.deliveries += conns.len() as u64;
        self.outputs.push_back(Output::Send { conns, frame });
    }

    /// Publishes `event` to the other nodes, if there are any.
    pub(super) fn publish(&mut self, event: BrokerEvent) {
        if let Some(message) = self.publication(event) {
            self.outputs.push_back(Output::Publish(message));
        }
    }

    /// `event` as this node publishes it (`None` on a single node).
    pub(super) fn publication(&self, event: BrokerEvent) -> Option<BrokerMessage> {
        let origin = self.origin.as_ref()?;
        Some(BrokerMessage {
            origin: origin.node.clone(),
            instance: origin.instance.clone(),
            event,
        })
    }
}

/// What a subsystem's unit tests run on: a single node's sink, and a start for virtual time.
#[cfg(test)]
pub(super) mod testing {
    use std::time::Instant;

    use super::Effects;
    use crate::ids::{InstanceId, NodeId};

    pub(in crate::hub) fn fx() -> Effects {
        let node = NodeId::new("n1").expect("a valid id");
        let instance = InstanceId::new("i1").expect("a valid id");
        Effects::new(false, &node, &instance)
    }

    /// The Hub reads no clock; only tests take one reading.
    #[allow(clippy::disallowed_methods)]
    pub(in crate::hub) fn epoch() -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (NodeId, InstanceId) {
        (
            NodeId::new("n1").expect("a valid id"),
            InstanceId::new("i1").expect("a valid id"),
        )
    }

    #[test]
    fn a_send_is_sorted_deduplicated_and_counted() {
        let (node, instance) = ids();
        let mut fx = Effects::new(false, &node, &instance);
        fx.send(
            vec![ConnId(3), ConnId(1), ConnId(3)],
            Bytes::from_static(b"x"),
        );
        fx.send(Vec::new(), Bytes::from_static(b"y"));
        assert_eq!(fx.stats.deliveries, 2);
        assert_eq!(fx.outputs.len(), 1, "an empty audience sends nothing");
        match fx.outputs.pop_front() {
            Some(Output::Send { conns, .. }) => assert_eq!(conns, vec![ConnId(1), ConnId(3)]),
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn only_a_cluster_member_publishes() {
        let (node, instance) = ids();
        let event = || BrokerEvent::SyncRequest;
        let mut alone = Effects::new(false, &node, &instance);
        alone.publish(event());
        assert!(alone.outputs.is_empty());
        let mut member = Effects::new(true, &node, &instance);
        member.publish(event());
        match member.outputs.pop_front() {
            Some(Output::Publish(message)) => {
                assert_eq!(message.origin, node);
                assert_eq!(message.instance, instance);
            }
            other => panic!("expected a publication, got {other:?}"),
        }
    }
}
