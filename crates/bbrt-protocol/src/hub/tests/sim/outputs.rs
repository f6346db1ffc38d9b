//! What the Sim does with each Hub output: deliveries recorded on their recipients (and
//! checked), site and coordinator requests scheduled, publications carried to the others.

use super::*;

impl Sim {
    pub(super) fn output(&mut self, node: usize, output: Output) {
        match output {
            Output::Send { conns, frame } => {
                assert!(
                    conns.windows(2).all(|w| w[0] < w[1]),
                    "recipients ascending without duplicates"
                );
                for conn in conns {
                    self.receive(node, conn, &frame);
                }
            }
            Output::Close { conn, code } => {
                let client = self
                    .clients
                    .get_mut(&conn)
                    .unwrap_or_else(|| panic!("close of unknown {conn}"));
                assert_eq!(
                    client.node, node,
                    "{conn} closed by a node that does not hold it"
                );
                assert!(
                    client.closed.is_none(),
                    "{conn} closed twice ({:?} then {code:?})",
                    client.closed
                );
                client.closed = Some(Closed::ByServer(code));
                self.release_all(node, conn);
            }
            Output::ReleaseCredential { conn, credential } => {
                self.releases.push((conn, credential));
                self.release(node, conn, credential);
            }
            Output::Api { id, request } => {
                let kind = request.name();
                // Resolved now, as the server's executor does.
                let token = request.credential().map(|c| {
                    self.nodes[node].tokens.get(&c).cloned().unwrap_or_else(|| {
                        panic!("the Hub used credential {c:?}, which no connection holds")
                    })
                });
                self.site.requests.push((node, request.clone()));
                self.request_times.push(self.now);
                let failure = self
                    .site
                    .failures
                    .get_mut(kind)
                    .and_then(VecDeque::pop_front);
                let latency = self
                    .site
                    .latency
                    .get(kind)
                    .copied()
                    .unwrap_or(self.site.default_latency);
                self.schedule(
                    self.now + latency,
                    Event::Api {
                        node,
                        id,
                        request,
                        token,
                        failure,
                    },
                );
            }
            Output::Coord { id, request } => {
                self.coord.requests.push(request.clone());
                self.schedule(
                    self.now + self.coord.latency,
                    Event::Coord { node, id, request },
                );
            }
            Output::IceServers {
                conns,
                user,
                purpose,
            } => {
                assert!(
                    conns.windows(2).all(|w| w[0] < w[1]),
                    "recipients ascending without duplicates"
                );
                for conn in &conns {
                    let client = self.clients.get(conn).expect("a known connection");
                    assert_eq!(
                        client.node, node,
                        "{conn} minted for by a node not holding it"
                    );
                }
                match purpose {
                    IcePurpose::Requested(request_id) => {
                        let frame = ServerMessage::IceServers(IceServers {
                            ice_servers: Vec::new(),
                            ttl: None,
                            request_id,
                        })
                        .encode();
                        for conn in conns {
                            self.receive(node, conn, &frame);
                        }
                    }
                    _ => self.ice_ringing.push((conns, user)),
                }
            }
            Output::Publish(message) => {
                let config = self.nodes[node].hub.config();
                assert_eq!(
                    (&message.origin, &message.instance),
                    (&config.node_id, &config.instance),
                    "publications carry their origin"
                );
                assert!(self.nodes.len() > 1, "a single node publishes nothing");
                // Through the wire format, as a Redis broker would carry it.
                let json = message.to_json();
                let message = BrokerMessage::from_json(&json).expect("broker messages round-trip");
                let kind: Value = serde_json::from_slice(&json).expect("json");
                if self
                    .broker_loses
                    .iter()
                    .any(|k| kind["event"]["kind"] == *k)
                {
                    return;
                }
                for other in 0..self.nodes.len() {
                    if other != node && self.nodes[other].up {
                        let at = self.now + self.broker_latency;
                        self.schedule(
                            at,
                            Event::Broker {
                                node: other,
                                message: message.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    pub(super) fn receive(&mut self, node: usize, conn: ConnId, frame: &Bytes) {
        let now = self.now;
        let user = self.nodes[node].hub.user_of(conn).cloned();
        let client = self
            .clients
            .get_mut(&conn)
            .unwrap_or_else(|| panic!("delivery to unknown {conn}"));
        assert_eq!(
            client.node, node,
            "{conn} got a frame from a node that does not hold it"
        );
        let message = ServerMessage::decode(frame).unwrap_or_else(|e| {
            panic!("undecodable frame {}: {e}", String::from_utf8_lossy(frame))
        });
        assert!(
            client.closed.is_none(),
            "{conn} is closed ({:?}) but received {message:?}",
            client.closed
        );
        // The Hub may have forgotten a connection it closes in the same step: its outputs
        // are drained after `handle` returns. A connection's user never changes once set.
        if user.is_some() {
            client.user = user;
        }
        client.inbox.push_back(message.clone());
        client.log.push((now, client.user.clone(), message));
    }
}
