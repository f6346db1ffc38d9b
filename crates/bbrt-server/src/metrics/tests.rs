use super::*;

#[test]
fn frame_types() {
    assert_eq!(
        frame_type(br#"{"type":"message","id":"1"}"#),
        Some("message")
    );
    assert_eq!(frame_type(br#"{"id":1}"#), None);
}

#[test]
fn renders() {
    let m = Metrics::default();
    m.frame_in(Some("typing"));
    m.frame_in(Some("nope"));
    m.frame_out(br#"{"type":"message"}"#, 3);
    let send = ApiRequest::Send {
        credential: None,
        sender: "1".parse().expect("valid"),
        thread: None,
        recipients: Vec::new(),
        text: String::new(),
        client_message_id: None,
        unconfirmed_since: None,
    };
    m.site_request(
        &send,
        Duration::from_millis(30),
        Some("bp_rest_messages_create_failed"),
    );
    m.ticket(TicketOutcome::Accepted);
    let text = m.render();
    assert!(text.contains("bbrt_tickets_total{outcome=\"accepted\"} 1"));
    assert!(text.contains("bbrt_tickets_total{outcome=\"refused\"} 0"));
    assert!(
        text.contains("bbrt_frames_in_total{type=\"typing\"} 1"),
        "{text}"
    );
    assert!(text.contains("bbrt_frames_in_total{type=\"unknown\"} 1"));
    assert!(text.contains("bbrt_frames_out_total{type=\"message\"} 3"));
    assert!(text.contains(
        "bbrt_site_errors_total{request=\"send\",code=\"bp_rest_messages_create_failed\"} 1"
    ));
    assert!(text.contains("bbrt_site_request_seconds_bucket{request=\"send\",le=\"0.05\"} 1"));
    assert!(text.contains("\nbbrt_node_id_conflict 0\n"), "{text}");
    assert!(
        text.contains("\nbbrt_participant_cache_threads 0\n"),
        "{text}"
    );
}

#[test]
fn every_type_and_request_has_its_own_label() {
    let m = Metrics::default();
    for kind in ClientMessage::KINDS {
        m.frame_in(Some(kind));
    }
    for kind in ServerMessage::KINDS {
        m.frame_out(format!(r#"{{"type":"{kind}"}}"#).as_bytes(), 1);
    }
    let text = m.render();
    for kind in ClientMessage::KINDS {
        assert!(text.contains(&format!("bbrt_frames_in_total{{type=\"{kind}\"}} 1\n")));
    }
    for kind in ServerMessage::KINDS {
        assert!(text.contains(&format!("bbrt_frames_out_total{{type=\"{kind}\"}} 1\n")));
    }
    assert!(text.contains("bbrt_frames_in_total{type=\"unknown\"} 0\n"));
    assert!(text.contains("bbrt_frames_out_total{type=\"other\"} 0\n"));
    for name in ApiRequest::NAMES {
        let line = format!("bbrt_site_request_seconds_count{{request=\"{name}\"}} 0\n");
        assert!(text.contains(&line), "{line}");
    }
}

#[test]
fn a_node_id_conflict_shows_while_the_other_process_is_heard() {
    let m = Metrics::default();
    let seen = |ago: Duration| NodeIdConflictSeen {
        node: "n1".parse().expect("valid"),
        instance: "other".parse().expect("valid"),
        last_seen: std::time::Instant::now() - ago,
        live_for: Duration::from_secs(1),
    };
    *m.node_id_conflict.lock().expect("unpoisoned") = Some(seen(Duration::ZERO));
    assert!(m.render().contains("\nbbrt_node_id_conflict 1\n"));
    let line = m.node_id_conflict().expect("live").summary();
    assert!(
        line.contains("instance other") && line.contains("--node-id"),
        "{line}"
    );
    // Not heard for longer than a live node stays silent: over.
    *m.node_id_conflict.lock().expect("unpoisoned") = Some(seen(Duration::from_secs(2)));
    assert!(m.node_id_conflict().is_none());
    assert!(m.render().contains("\nbbrt_node_id_conflict 0\n"));
}
