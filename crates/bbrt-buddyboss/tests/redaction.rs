//! No token, password, cookie or nonce reaches a log line, an error or a `Debug` print.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bbrt_buddyboss::fake::Fault;
use bbrt_buddyboss::{BuddyBoss, Credential, SendRequest, perform};
use bbrt_protocol::api::ApiRequest;
use common::{client_at, seeded, thread, user};

/// The client timeout in tests that make the site hang: long enough that a loaded
/// machine does not time out a request that was answered.
const HANG_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let site = seeded().await;
    site.add_app_password(2, "bad-secret-password-never-valid");
    site.revoke("bad-secret-password-never-valid");
    let bb = client_at(&site.api_root(), |c| c.request_timeout = HANG_TIMEOUT);
    let credentials = [
        Credential::bearer("alice-token"),
        Credential::basic("alice:alice-app-pass"),
        Credential::access_token("alice-jwt"),
        Credential::cookie("wordpress_logged_in=alice", "alice-nonce"),
        Credential::basic("alice:bad-secret-password-never-valid"),
        Credential::cookie("wordpress_logged_in=alice", "stale-secret-nonce"),
    ];
    let mut printed = Vec::new();
    let (t, _) = site.create_thread(2, &[3], "hello");
    let tid = thread(&t.to_string());
    for c in &credentials {
        printed.push(format!("{c:?}"));
        printed.push(format!("{:?}", bb.verify(Some(c), None, None).await));
        printed.push(format!(
            "{:?}",
            bb.participants(Some(c), &user("2"), &tid, false).await
        ));
        match bb
            .send_unkeyed(&SendRequest::reply(
                Some(c),
                &user("2"),
                &tid,
                "hello again",
            ))
            .await
        {
            Ok(m) => printed.push(format!("{m:?}")),
            Err(e) => printed.push(format!(
                "{e} {e:?} {:?}",
                bbrt_protocol::api::SiteError::from(e.clone())
            )),
        }
    }
    site.inject(Fault::StoreThenHang, 1);
    printed.push(format!(
        "{:?}",
        bb.send_unkeyed(&SendRequest::reply(
            Some(&credentials[0]),
            &user("2"),
            &tid,
            "reconciled"
        ))
        .await
    ));
    site.inject(Fault::Hang, 1);
    printed.push(format!(
        "{:?}",
        bb.send_unkeyed(&SendRequest::reply(
            Some(&credentials[1]),
            &user("2"),
            &tid,
            "lost"
        ))
        .await
    ));
    let request = ApiRequest::Verify {
        credential: None,
        claimed_user: None,
        current_user: None,
    };
    printed.push(format!(
        "{:?}",
        perform(&bb, &request, Some(&credentials[2])).await
    ));
    printed.push(format!("{bb:?}"));
    printed.push(serde_json::to_string(&site.requests()).expect("log serializes"));

    let logs =
        String::from_utf8(captured.0.lock().expect("capture lock").clone()).expect("utf-8 logs");
    assert!(logs.contains("site answered"), "the capture works: {logs}");
    assert!(logs.contains("reconciled"), "{logs}");
    let everything = format!("{logs}\n{}", printed.join("\n"));
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:alice-app-pass");
    for secret in [
        "alice-token",
        "alice-app-pass",
        basic.as_str(),
        "alice-jwt",
        "wordpress_logged_in=alice",
        "alice-nonce",
        "bad-secret-password",
        "stale-secret-nonce",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}
