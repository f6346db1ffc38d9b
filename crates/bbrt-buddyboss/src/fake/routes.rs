//! The HTTP side: the router, faults and pauses, and BuddyBoss's routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::time::parse_utc;

use super::auth::{Caller, authenticate, redact};
use super::plugin::plugin_send_message;
use super::render::{Answer, SITE, raw_response, respond, thread_json, with_param};
use super::state::{
    InFlight, Row, Shared, State, Thread, is_participant, store_message, total_unread,
};
use super::{Fault, LoggedRequest, PLUGIN_NAMESPACE};

pub(super) const FATAL_MESSAGE: &str = "<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>";

pub(super) const NOT_JSON_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><p>Briefly unavailable for scheduled maintenance. Check back in a minute.</p></body></html>\n";

/// The query's pairs, decoded as a form (`+` is a space), in order.
pub(super) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) async fn handle(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let _guard = InFlight(&shared);

    let mut query = parse_query(uri.query());
    let (route, form) = if let Some(r) = uri.path().strip_prefix("/wp-json") {
        (r.to_owned(), "wp-json")
    } else if uri.path() == "/" && query.iter().any(|(k, _)| k == "rest_route") {
        let route = query
            .iter()
            .find(|(k, _)| k == "rest_route")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        query.retain(|(k, _)| k != "rest_route");
        (route, "rest_route")
    } else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/html; charset=UTF-8")
            .body(Body::from(
                "<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>",
            ))
            .expect("static response parts are valid");
    };
    let route = if route.len() > 1 {
        route.trim_end_matches('/').to_owned()
    } else {
        route
    };
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let auth = header_str("authorization")
        .and_then(|v| v.split_once(' ').map(|(s, _)| s.to_ascii_lowercase()))
        .or_else(|| header_str("accesstoken").map(|_| "access-token".into()))
        .or_else(|| header_str("x-bbrt-session").map(|_| "site-session".into()))
        .or_else(|| {
            header_str("cookie").map(|_| {
                if headers.contains_key("x-wp-nonce") {
                    "cookie-nonce".into()
                } else {
                    "cookie".into()
                }
            })
        });
    let logged_body = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    };
    let entry = LoggedRequest {
        method: method.to_string(),
        route: route.clone(),
        form: form.into(),
        query: query.clone(),
        auth,
        headers: headers
            .iter()
            .filter(|(n, _)| n.as_str() != "host")
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    redact(n.as_str(), v.to_str().unwrap_or("<binary>")),
                )
            })
            .collect(),
        body: logged_body,
    };

    if let Some(status) = shared.state().no_rest_api {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        return raw_response(
            status,
            "text/html; charset=UTF-8",
            b"<!DOCTYPE html><html><body><h1>A WordPress site</h1></body></html>".to_vec(),
        );
    }
    let is_plugin_send = method == Method::POST && route == "/bbrt/v1/messages";
    let is_create = is_plugin_send || (method == Method::POST && route == "/buddyboss/v1/messages");
    let (latency, fault, paused_until) = {
        let mut s = shared.state();
        s.log.push(entry);
        let position = s.faults.iter().position(|f| match f {
            Fault::StoreThenHang => is_create,
            Fault::SlowStore(_) | Fault::KeyStoreDown => is_plugin_send,
            _ => true,
        });
        let fault = position.and_then(|i| s.faults.remove(i));
        (s.latency, fault, s.paused_until)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let wait_until = match fault {
        Some(Fault::Slow(d)) => Some(tokio::time::Instant::now() + d),
        _ => paused_until.filter(|at| *at > tokio::time::Instant::now()),
    };
    let slow_store = matches!(fault, Some(Fault::SlowStore(_)));
    if wait_until.is_some() || slow_store {
        // Detached, so the work is done even when the client stops waiting.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(&shared);
        let fault = fault.filter(|_| slow_store);
        tokio::spawn(async move {
            if let Some(at) = wait_until {
                tokio::time::sleep_until(at).await;
            }
            let _ =
                tx.send(perform(&shared, &method, &route, &query, &body, &headers, fault).await);
        });
        return match rx.await {
            Ok((answer, unread, authenticated)) => respond(answer, unread, authenticated),
            Err(_) => std::future::pending().await,
        };
    }
    match fault {
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::ServerError) => {
            let mut a = Answer::error(500, "internal_server_error", FATAL_MESSAGE);
            if let Value::Object(m) = &mut a.body {
                m.insert("additional_errors".into(), json!([]));
            }
            return respond(a, 0, false);
        }
        _ => {}
    }

    let (answer, unread, authenticated) =
        perform(&shared, &method, &route, &query, &body, &headers, fault).await;
    match fault {
        Some(Fault::StoreThenHang) => std::future::pending::<()>().await,
        Some(Fault::Truncated) => {
            let text = answer.body.to_string();
            let half = &text.as_bytes()[..text.len() / 2];
            return raw_response(
                StatusCode::OK,
                "application/json; charset=UTF-8",
                half.to_vec(),
            );
        }
        Some(Fault::CutOff) => {
            let text = answer.body.to_string();
            let half = text.as_bytes()[..text.len() / 2].to_vec();
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
                .header(header::CONTENT_LENGTH, text.len())
                .body(Body::from(half))
                .expect("static response parts are valid");
        }
        Some(Fault::NotJson) => {
            return raw_response(
                StatusCode::OK,
                "text/html; charset=UTF-8",
                NOT_JSON_PAGE.as_bytes().to_vec(),
            );
        }
        _ => {}
    }
    respond(answer, unread, authenticated)
}

/// Does the request: the answer, the caller's unread count, whether it authenticated.
/// `fault` is the fault this request drew (only the plugin's route reads it here).
pub(super) async fn perform(
    shared: &Shared,
    method: &Method,
    route: &str,
    query: &[(String, String)],
    body: &Bytes,
    headers: &HeaderMap,
    fault: Option<Fault>,
) -> (Answer, u32, bool) {
    let plugin_send =
        method == Method::POST && route == "/bbrt/v1/messages" && shared.state().plugin;
    if plugin_send {
        return plugin_send_message(shared, body, headers, fault).await;
    }
    let mut s = shared.state();
    match authenticate(&s, headers) {
        Err(a) => (a, 0, false),
        Ok(caller) => {
            let answer = route_request(&mut s, method, route, query, body, &caller);
            let (unread, authenticated) = match caller {
                Caller::User(u, _) => (total_unread(&s, u), true),
                Caller::Anonymous => (0, false),
            };
            (answer, unread, authenticated)
        }
    }
}

pub(super) fn route_request(
    s: &mut State,
    method: &Method,
    route: &str,
    query: &[(String, String)],
    body: &[u8],
    caller: &Caller,
) -> Answer {
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let id = |seg: &str| seg.parse::<u64>().ok();
    match (method.as_str(), segments.as_slice()) {
        ("GET", [""]) => Answer::ok(json!({
            "name": "A BuddyBoss site",
            "url": SITE,
            "namespaces": s.namespaces,
            "authentication": {"application-passwords": {"endpoints": {}}},
            "routes": if s.plugin {
                json!({ "/bbrt/v1": {"namespace": PLUGIN_NAMESPACE}, "/bbrt/v1/messages": {"namespace": PLUGIN_NAMESPACE, "methods": ["POST"]} })
            } else {
                json!({})
            },
        })),
        ("GET", ["wp", "v2", "users", "me"]) => users_me(s, caller),
        ("GET", ["buddyboss", "v1", "messages"]) => list_threads(s, query, caller),
        ("POST", ["buddyboss", "v1", "messages"]) => create_message(s, body, caller),
        ("GET", ["buddyboss", "v1", "messages", t]) if id(t).is_some() => {
            get_thread(s, id(t).unwrap_or_default(), query, caller)
        }
        ("POST", ["buddyboss", "v1", "messages", "action", t]) if id(t).is_some() => {
            thread_action(s, id(t).unwrap_or_default(), body, caller)
        }
        _ => Answer::error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        ),
    }
}

pub(super) fn users_me(s: &State, caller: &Caller) -> Answer {
    let Caller::User(uid, _) = caller else {
        return Answer::error(
            401,
            "rest_not_logged_in",
            "You are not currently logged in.",
        );
    };
    let Some(u) = s.user(*uid) else {
        return Answer::error(
            401,
            "rest_not_logged_in",
            "You are not currently logged in.",
        );
    };
    let avatar = format!(
        "{SITE}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss-50.png"
    );
    Answer::ok(json!({
        "id": u.id,
        "name": u.display_name,
        "url": "",
        "description": "",
        "link": format!("{SITE}/author/{}/", u.login),
        "slug": u.login,
        "avatar_urls": { "24": avatar, "48": avatar, "96": avatar },
        "meta": [],
        "_links": {
            "self": [{ "href": format!("{SITE}/wp-json/wp/v2/users/{}", u.id) }],
            "collection": [{ "href": format!("{SITE}/wp-json/wp/v2/users") }],
        },
    }))
}

pub(super) const NOT_ALLOWED_THREAD: &str = "Sorry, you are not allowed to see this thread.";

pub(super) fn get_thread(
    s: &State,
    id: u64,
    query: &[(String, String)],
    caller: &Caller,
) -> Answer {
    // WordPress checks the arguments before the permission callback.
    let before = match query.iter().find(|(k, _)| k == "before") {
        Some((_, v)) => match parse_utc(v) {
            Some(at) => Some(at),
            None => {
                let a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): before");
                return with_param(a, "before", "Invalid date.");
            }
        },
        None => None,
    };
    let Caller::User(uid, _) = caller else {
        return Answer::error(401, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    match s.threads.get(&id) {
        Some(t) if is_participant(t, *uid) || s.moderators.contains(uid) => {
            Answer::ok(thread_json(s, t, *uid, false, before, None))
        }
        _ => Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD),
    }
}

pub(super) fn list_threads(s: &State, query: &[(String, String)], caller: &Caller) -> Answer {
    let Caller::User(uid, _) = caller else {
        return Answer::error(
            401,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        );
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(other) = param("user_id")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|u| u != uid)
    {
        if s.user(other).is_none() {
            return Answer::error(404, "bp_rest_invalid_id", "Invalid member ID.");
        }
        return Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you cannot view the messages.",
        );
    }
    let page = param("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = param("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let box_ = param("box").unwrap_or("inbox");
    let mut threads: Vec<&Thread> = s
        .threads
        .values()
        .filter(|t| is_participant(t, *uid))
        .filter(|t| match box_ {
            "sentbox" => t.messages.iter().any(|m| m.sender == *uid),
            "starred" => false,
            _ => true,
        })
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse((t.messages.last().map_or(0, |m| m.sent_at), t.id)));
    let total = threads.len();
    let items: Vec<Value> = threads
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|t| {
            let mut v = thread_json(s, t, *uid, false, None, None);
            if let Value::Object(m) = &mut v {
                let ids: Vec<String> = t.rows.iter().map(|r| r.user.to_string()).collect();
                m.insert("recipient_ids".into(), json!(ids));
            }
            v
        })
        .collect();
    let mut answer = Answer::ok(Value::Array(items));
    if total > 0 {
        answer.headers.push(("x-wp-total", total.to_string()));
        answer
            .headers
            .push(("x-wp-totalpages", total.div_ceil(per_page).to_string()));
    }
    answer.headers.push(("x-wp-archivetotal", "0".into()));
    answer
}

/// `wp_parse_id_list`: an array of ids or a comma-separated string; zeros dropped.
pub(super) fn parse_id_list(v: Option<&Value>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut push = |n: u64| {
        if n > 0 && !out.contains(&n) {
            out.push(n);
        }
    };
    match v {
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Number(n) => push(n.as_u64().unwrap_or(0)),
                    Value::String(s) => push(s.trim().parse().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        Some(Value::String(s)) => s
            .split([',', ' '])
            .for_each(|p| push(p.trim().parse().unwrap_or(0))),
        Some(Value::Number(n)) => push(n.as_u64().unwrap_or(0)),
        _ => {}
    }
    out
}

/// BuddyBoss's 401 for a create without a signed-in user.
pub(super) fn login_required_to_create() -> Answer {
    Answer::error(
        401,
        "bp_rest_authorization_required",
        "Sorry, you need to be logged in to create a message.",
    )
}

/// BuddyBoss's create permission for signed-in `uid`: a reply (`id` > 0) only to a thread
/// it takes part in. The thread id (0: a new thread), or the 403. Shared by BuddyBoss's route
/// and the companion plugin's, which delegates to it.
pub(super) fn may_create(s: &State, params: &Value, uid: u64) -> Result<u64, Answer> {
    let thread_id = match params.get("id") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(v)) => v.trim().parse().unwrap_or(0),
        _ => 0,
    };
    if thread_id > 0
        && !s
            .threads
            .get(&thread_id)
            .is_some_and(|t| is_participant(t, uid))
    {
        return Err(Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        ));
    }
    Ok(thread_id)
}

pub(super) fn create_message(s: &mut State, body: &[u8], caller: &Caller) -> Answer {
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return Answer::error(400, "rest_invalid_json", "Invalid JSON body passed."),
        }
    };
    let Caller::User(uid, scheme) = *caller else {
        return login_required_to_create();
    };
    let thread_id = match may_create(s, &params, uid) {
        Ok(thread_id) => thread_id,
        Err(a) => return a,
    };
    let recipients = parse_id_list(params.get("recipients"));
    if thread_id == 0 && recipients.is_empty() {
        return Answer::error(
            400,
            "bp_rest_empty_recipients",
            "Please, enter recipients user IDs.",
        );
    }
    let message = match params.get("message") {
        Some(Value::String(m)) if m == "0" => "<p>0</p>".to_owned(),
        Some(Value::String(m)) => m.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if message.is_empty() {
        return Answer::error(
            400,
            "bp_rest_messages_empty_message",
            "Sorry, Your message cannot be empty.",
        );
    }
    let failed = || {
        Answer::error(
            500,
            "bp_rest_messages_create_failed",
            "There was a problem sending your message.",
        )
    };
    if s.app_password_trap && scheme == "basic" {
        // As the real site answered without the fix: a reply is not allowed at all.
        if thread_id > 0 {
            return Answer::error(
                403,
                "bp_rest_authorization_required",
                "Sorry, you are not allowed to perform this action.",
            );
        }
        return failed();
    }
    let subject = params
        .get("subject")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let target = if thread_id > 0 {
        thread_id
    } else {
        let others: Vec<u64> = recipients.iter().copied().filter(|&r| r != uid).collect();
        if others.is_empty() || others.iter().any(|r| s.user(*r).is_none()) {
            return failed();
        }
        let mut set: Vec<u64> = others.clone();
        set.push(uid);
        set.sort_unstable();
        let existing = s.threads.values().find(|t| {
            let mut users: Vec<u64> = t.rows.iter().map(|r| r.user).collect();
            users.sort_unstable();
            users == set
        });
        match existing {
            Some(t) => t.id,
            None => {
                let id = s.threads.keys().next_back().map_or(1, |k| k + 1);
                let mut rows = Vec::new();
                for user in std::iter::once(uid).chain(others) {
                    s.next_row += 1;
                    rows.push(Row {
                        row_id: s.next_row,
                        user,
                        unread: 0,
                    });
                }
                s.threads.insert(
                    id,
                    Thread {
                        id,
                        rows,
                        messages: Vec::new(),
                    },
                );
                id
            }
        }
    };
    let subject =
        subject.unwrap_or_else(
            || match s.threads.get(&target).and_then(|t| t.messages.first()) {
                Some(first) if thread_id > 0 => {
                    format!("Re: {}", first.subject.trim_start_matches("Re: "))
                }
                _ => "No Subject".into(),
            },
        );
    let stored = store_message(s, target, uid, &subject, &message);
    s.last_created = Some((target, stored));
    if let Some(t) = s.threads.get_mut(&target) {
        for r in t.rows.iter_mut().filter(|r| r.user != uid) {
            r.unread += 1;
        }
    }
    let Some(t) = s.threads.get(&target) else {
        return failed();
    };
    let mut answer = Answer::ok(thread_json(s, t, uid, true, None, None));
    for name in [
        "bp_messages_send_to",
        "bp_messages_subject",
        "bp_messages_content",
    ] {
        answer.headers.push((
            "set-cookie",
            format!("{name}=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/"),
        ));
    }
    answer
}

pub(super) fn thread_action(s: &mut State, id: u64, body: &[u8], caller: &Caller) -> Answer {
    let params: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let Some(action) = params
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let mut a = Answer::error(
            400,
            "rest_missing_callback_param",
            "Missing parameter(s): action",
        );
        a.body["data"]["params"] = json!(["action"]);
        return a;
    };
    if !matches!(
        action.as_str(),
        "delete_messages" | "hide_thread" | "unread"
    ) {
        let mut a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): action");
        a.body["data"]["params"] =
            json!({ "action": "action is not one of delete_messages, hide_thread, and unread." });
        return a;
    }
    let Caller::User(uid, _) = *caller else {
        return Answer::error(401, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    let Some(t) = s.threads.get_mut(&id).filter(|t| is_participant(t, uid)) else {
        return Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    if action == "unread" {
        let value = match params.get("value") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) => matches!(v.as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_u64() != Some(0),
            _ => false,
        };
        if let Some(r) = t.rows.iter_mut().find(|r| r.user == uid) {
            if value {
                r.unread = r.unread.max(1);
            } else {
                r.unread = 0;
            }
        }
    }
    let Some(t) = s.threads.get(&id) else {
        return Answer::error(403, "bp_rest_authorization_required", NOT_ALLOWED_THREAD);
    };
    Answer::ok(thread_json(s, t, uid, false, None, None))
}
