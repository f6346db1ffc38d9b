//! The fake site answers like the captured real one (raw HTTP, no bbrt client).

mod common;

use bbrt_buddyboss::fake::FakeSite;
use serde_json::{Value, json};

struct Raw {
    http: reqwest::Client,
    root: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Raw {
    fn new(root: String) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::new(),
            root,
        }
    }

    async fn call(
        &self,
        method: &str,
        route: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.http.request(method, format!("{}{route}", self.root));
        if let Some(token) = auth {
            r = r.bearer_auth(token);
        }
        if let Some(body) = body {
            r = r.json(&body);
        }
        let res = r.send().await.expect("answered");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.json().await.expect("JSON body");
        Answer {
            status,
            headers,
            body,
        }
    }
}

fn error(code: &str, message: &str, status: u16) -> Value {
    json!({ "code": code, "message": message, "data": { "status": status } })
}

#[tokio::test]
async fn users_me_like_the_captures() {
    let site = common::seeded().await;
    let raw = Raw::new(site.api_root());
    let a = raw
        .call("GET", "wp/v2/users/me", Some("alice-token"), None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], 2);
    assert_eq!(a.body["name"], "Alice Anderson");
    assert_eq!(a.body["slug"], "alice");
    assert!(a.body["avatar_urls"]["96"].is_string());
    assert!(a.headers.contains_key("bbp-unread-messages"));
    assert_eq!(a.headers["content-type"], "application/json; charset=UTF-8");

    let a = raw.call("GET", "wp/v2/users/me", None, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.body,
        error(
            "rest_not_logged_in",
            "You are not currently logged in.",
            401
        )
    );
    assert!(!a.headers.contains_key("www-authenticate"));
    assert!(a.headers.contains_key("bbp-unread-messages"));
}

#[tokio::test]
async fn messages_like_the_captures() {
    let site = common::seeded().await;
    let raw = Raw::new(site.api_root());
    // 02: a new thread, with sender_id ignored.
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "recipients": [3], "subject": "Hello Bob", "message": "Hi Bob, this is Alice.", "sender_id": 3 })),
        )
        .await;
    assert_eq!(a.status, 200);
    let t = &a.body;
    assert_eq!(
        (
            t["id"].clone(),
            t["message_id"].clone(),
            t["last_sender_id"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );
    assert_eq!(
        t["subject"],
        json!({ "raw": "Hello Bob", "rendered": "Hello Bob" })
    );
    assert_eq!(
        t["message"],
        json!({ "raw": "Hi Bob, this is Alice.", "rendered": "<p>Hi Bob, this is Alice.</p>\n" })
    );
    assert_eq!(t["recipients"]["3"]["user_id"], 3);
    assert_ne!(
        t["recipients"]["3"]["id"], 3,
        "the row id is not the user id"
    );
    assert_eq!(t["recipients"]["3"]["unread_count"], 1);
    assert_eq!(t["messages"][0]["sender_id"], 2);
    let date = t["messages"][0]["date_sent"].as_str().expect("a date");
    assert_eq!(date.len(), 19, "naive UTC: {date}");
    assert!(a.headers.get_all("set-cookie").iter().count() == 3);

    // 03: a reply; 04: GET has no raw at thread level and does not mark read.
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "id": 1, "message": "Second message from Alice." })),
        )
        .await;
    assert_eq!(a.body["subject"]["raw"], "Re: Hello Bob");
    assert_eq!(a.body["messages"].as_array().map(Vec::len), Some(2));
    let a = raw
        .call("GET", "buddyboss/v1/messages/1", Some("bob-token"), None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["subject"], json!({ "rendered": "Re: Hello Bob" }));
    assert_eq!(a.body["unread_count"], 1);
    assert_eq!(a.body["recipients"]["3"]["unread_count"], 2);
    assert_eq!(a.headers["bbp-unread-messages"], "2");
    assert_eq!(a.body["messages"][0]["id"], 1, "oldest first");

    // 05, 12, 11: not a participant, no such thread, anonymous.
    let not_allowed = "Sorry, you are not allowed to see this thread.";
    let a = raw
        .call("GET", "buddyboss/v1/messages/1", Some("carol-token"), None)
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            error("bp_rest_authorization_required", not_allowed, 403)
        )
    );
    let a = raw
        .call(
            "GET",
            "buddyboss/v1/messages/99999",
            Some("alice-token"),
            None,
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            error("bp_rest_authorization_required", not_allowed, 403)
        )
    );
    let a = raw.call("GET", "buddyboss/v1/messages/1", None, None).await;
    assert_eq!(
        (a.status, a.body),
        (
            401,
            error("bp_rest_authorization_required", not_allowed, 401)
        )
    );

    // 08, 15, 16, 20.
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("carol-token"),
            Some(json!({ "id": 1, "message": "Carol intruding." })),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            error(
                "bp_rest_authorization_required",
                "Sorry, you are not allowed to perform this action.",
                403
            )
        )
    );
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "id": 1, "message": "" })),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            400,
            error(
                "bp_rest_messages_empty_message",
                "Sorry, Your message cannot be empty.",
                400
            )
        )
    );
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "message": "hi" })),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            400,
            error(
                "bp_rest_empty_recipients",
                "Please, enter recipients user IDs.",
                400
            )
        )
    );
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "recipients": [999], "subject": "x", "message": "to nobody" })),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            500,
            error(
                "bp_rest_messages_create_failed",
                "There was a problem sending your message.",
                500
            )
        )
    );

    // 18: the same pair again appends; 19: a trio is a new thread.
    let a = raw
        .call("POST", "buddyboss/v1/messages", Some("alice-token"), Some(json!({ "recipients": [3], "subject": "New subject", "message": "Does this open a new thread?" })))
        .await;
    assert_eq!(
        (a.body["id"].clone(), a.body["message_id"].clone()),
        (json!(1), json!(3))
    );
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages",
            Some("alice-token"),
            Some(json!({ "recipients": [3, 4], "message": "Hi Bob and Carol." })),
        )
        .await;
    assert_eq!(a.body["id"], 2);
    assert_eq!(a.body["recipients_count"], 3);

    // 09/28: lists, with totals only when non-empty.
    let a = raw
        .call(
            "GET",
            "buddyboss/v1/messages?box=sentbox",
            Some("alice-token"),
            None,
        )
        .await;
    assert_eq!(a.body.as_array().map(Vec::len), Some(2));
    assert_eq!(a.headers["x-wp-total"], "2");
    let carol = FakeSite::start_seeded().await.expect("starts");
    let a = Raw::new(carol.api_root())
        .call("GET", "buddyboss/v1/messages", Some("carol-token"), None)
        .await;
    assert_eq!(a.body, json!([]));
    assert!(!a.headers.contains_key("x-wp-total"));
    let a = raw
        .call(
            "GET",
            "buddyboss/v1/messages?user_id=2",
            Some("bob-token"),
            None,
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            error(
                "bp_rest_authorization_required",
                "Sorry, you cannot view the messages.",
                403
            )
        )
    );

    // 24/30/31: the read action.
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages/action/1",
            Some("bob-token"),
            Some(json!({ "action": "unread", "value": false })),
        )
        .await;
    assert_eq!((a.status, a.body["unread_count"].clone()), (200, json!(0)));
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages/action/1",
            Some("bob-token"),
            Some(json!({ "action": "unread", "value": true })),
        )
        .await;
    assert_eq!(a.body["recipients"]["3"]["unread_count"], 1);
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages/action/1",
            Some("carol-token"),
            Some(json!({ "action": "unread", "value": false })),
        )
        .await;
    assert_eq!(
        (a.status, a.body),
        (
            403,
            error(
                "bp_rest_authorization_required",
                "Sorry, you are not allowed to see this thread.",
                403
            )
        )
    );
    let a = raw
        .call(
            "POST",
            "buddyboss/v1/messages/action/1",
            Some("bob-token"),
            Some(json!({ "value": false })),
        )
        .await;
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (400, json!("rest_missing_callback_param"))
    );

    // Unknown routes.
    let a = raw
        .call("GET", "buddyboss/v1/nothing", Some("bob-token"), None)
        .await;
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (404, json!("rest_no_route"))
    );
}

#[tokio::test]
async fn the_query_root_form_and_basic_auth_errors() {
    let site = common::seeded().await;
    let raw = Raw::new(site.query_api_root());
    let a = raw
        .call("GET", "/wp/v2/users/me", Some("bob-token"), None)
        .await;
    assert_eq!(a.body["id"], 3);
    let basic = |user_pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    for (user_pass, status, code) in [
        ("alice:alice-app-pass", 200, None),
        ("alice:alice-app -pass", 200, None),
        ("alice:wrong", 401, Some("incorrect_password")),
        ("nobody:x", 401, Some("invalid_username")),
    ] {
        let res = raw
            .http
            .get(format!("{}/buddyboss/v1/messages", site.query_api_root()))
            .header("authorization", basic(user_pass))
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status().as_u16(), status, "{user_pass}");
        let body: Value = res.json().await.expect("JSON");
        if let Some(code) = code {
            assert_eq!(body["code"], code);
        }
    }
}
