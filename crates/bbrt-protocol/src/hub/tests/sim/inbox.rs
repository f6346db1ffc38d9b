//! What the Sim's clients received, taken and inspected by the scenarios.

use super::*;

impl Sim {
    /// Frames `conn` received since the last `take`.
    pub(crate) fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.clients
            .get_mut(&conn)
            .expect("known connection")
            .inbox
            .drain(..)
            .collect()
    }

    /// Like `take`, as JSON values (to compare with `json!` literals).
    pub(crate) fn take_json(&mut self, conn: ConnId) -> Vec<Value> {
        self.take(conn).iter().map(to_json).collect()
    }

    /// The types of the frames `conn` received since the last `take`.
    pub(crate) fn kinds(&mut self, conn: ConnId) -> Vec<&'static str> {
        self.take(conn).iter().map(ServerMessage::kind).collect()
    }

    /// Forgets what every connection received so far.
    pub(crate) fn clear(&mut self) {
        for client in self.clients.values_mut() {
            client.inbox.clear();
        }
    }

    /// Takes the frames of `conn` and asserts they are exactly one `error` with `code` (and
    /// `requestId` if given); returns its `retryable`.
    #[track_caller]
    pub(crate) fn expect_error(
        &mut self,
        conn: ConnId,
        code: &str,
        request_id: Option<i64>,
    ) -> bool {
        let frames = self.take_json(conn);
        assert_eq!(
            frames.len(),
            1,
            "expected one error {code}, got {frames:#?}"
        );
        let e = &frames[0];
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(
            e.get("requestId").and_then(Value::as_i64),
            request_id,
            "{e}"
        );
        e["retryable"].as_bool().expect("retryable is a bool")
    }

    /// `(code, requestId)` of every frame of `conn` since the last take; non-errors panic.
    #[track_caller]
    pub(crate) fn errors(&mut self, conn: ConnId) -> Vec<(String, Option<i64>)> {
        self.take_json(conn)
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "error", "{e}");
                (
                    e["code"].as_str().expect("code").to_owned(),
                    e.get("requestId").and_then(Value::as_i64),
                )
            })
            .collect()
    }

    /// How the connection ended, if it did.
    pub(crate) fn closed(&self, conn: ConnId) -> Option<Closed> {
        self.client(conn).closed
    }

    /// The close code the Hub gave `conn`, if it closed it.
    pub(crate) fn close_code(&self, conn: ConnId) -> Option<u16> {
        match self.client(conn).closed {
            Some(Closed::ByServer(code)) => Some(code.code()),
            _ => None,
        }
    }

    /// Online users per node, as each Hub sees them.
    pub(crate) fn online(&self, node: usize) -> Vec<String> {
        self.nodes[node]
            .hub
            .online_users()
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect()
    }
}
