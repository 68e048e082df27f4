//! The metrics token and listener; readiness and API answers when the database goes away under a
//! running app. The latter PostgreSQL only: the
//! database is dropped (connections terminated) while the app serves. An embedded SQLite
//! file cannot be taken away from open connections in a way the suite can rely on.

mod metrics {
    use firehook::clock::Clock;
    use firehook::config::SecretString;

    use crate::helpers::{spawn_app_with, Backend, Reply};

    async fn metrics_can_require_a_token(backend: Backend) {
        let app = spawn_app_with(backend, Clock::system(), |s| {
            s.metrics.token = SecretString::from("metrics-token-0123456789");
        })
        .await;
        let open = app.get_public("/metrics").await;
        assert_eq!(
            (open.status, open.error_code()),
            (401, "AUTHENTICATION_REQUIRED")
        );
        let wrong = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth("metrics-token-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth("metrics-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        assert!(right.text().await.unwrap().contains("firehook_"));
    }

    /// `metrics.bind`: `/metrics` is served there only (still behind its token), and the
    /// main listener answers 404 for it.
    async fn metrics_can_have_a_listener_of_their_own(backend: Backend) {
        let app = spawn_app_with(backend, Clock::system(), |s| {
            s.metrics.bind = "127.0.0.1:0".into();
            s.metrics.token = SecretString::from("metrics-token-0123456789");
        })
        .await;
        let apart = app.metrics_base.clone().expect("a metrics listener");
        assert_ne!(apart, app.base);
        assert_eq!(app.get_public("/healthz").await.status, 200);
        let main = app.get_public("/metrics").await;
        assert_eq!((main.status, main.error_code()), (404, "NOT_FOUND"));

        let get = |path: &str| app.client.get(format!("{apart}{path}"));
        let open = Reply::from(get("/metrics").send().await.unwrap()).await;
        assert_eq!(open.status, 401);
        let scraped = get("/metrics")
            .bearer_auth("metrics-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(scraped.status(), 200);
        let text = scraped.text().await.unwrap();
        assert!(text.contains(r#"route="/healthz""#), "{text}");
        for path in ["/healthz", "/v1/automations"] {
            let reply = Reply::from(get(path).send().await.unwrap()).await;
            assert_eq!(
                (reply.status, reply.error_code()),
                (404, "NOT_FOUND"),
                "{path}"
            );
        }
        let post = app.client.post(format!("{apart}/metrics"));
        let reply = Reply::from(post.send().await.unwrap()).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (405, "METHOD_NOT_ALLOWED")
        );
        assert_eq!(reply.headers["allow"], "GET");
    }

    /// Requests are counted by route: receive URLs under one route whatever their ids,
    /// paths that match no route as `unmatched`.
    async fn requests_are_counted_by_route(backend: Backend) {
        let app = crate::helpers::spawn_app(backend).await;
        for connection in ["con_a", "con_b"] {
            let path = format!("/api/integrations/clerk/webhook/{connection}");
            assert_eq!(app.post_raw(&path, "{}").await.status, 404);
        }
        assert_eq!(
            app.post_raw("/api/integrations/clerk", "{}").await.status,
            404
        );
        let scraped = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(scraped.status(), 200);
        let text = scraped.text().await.unwrap();
        let count = |labels: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("firehook_http_requests_total{{{labels}}} ")))
                .map(|n| n.trim().to_owned())
        };
        assert_eq!(
            count(r#"route="/api/integrations/{provider}/webhook/{connection_id}",status="404""#)
                .as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            count(r#"route="unmatched",status="404""#).as_deref(),
            Some("1"),
            "{text}"
        );
    }

    crate::each_backend!(
        metrics_can_require_a_token,
        metrics_can_have_a_listener_of_their_own,
        requests_are_counted_by_route
    );
}

mod postgres {
    use serde_json::json;

    use crate::helpers::{spawn_app, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readyz_answers_503_when_the_database_is_gone() {
        let app = spawn_app(Backend::postgres()).await;
        let ready = app.get_public("/readyz").await;
        assert_eq!(
            (ready.status, &ready.body),
            (200, &json!({"status": "ready"}))
        );
        app.database.as_ref().expect("own database").drop_now();
        let gone = app.get_public("/readyz").await;
        assert_eq!(
            (gone.status, &gone.body),
            (503, &json!({"status": "unavailable", "reason": "database"}))
        );
        let alive = app.get_public("/healthz").await;
        assert_eq!(alive.status, 200, "the process itself is up");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn api_calls_answer_503_with_retry_after_while_the_database_is_gone() {
        let app = spawn_app(Backend::postgres()).await;
        let trigger = app.create_trigger().await;
        app.database.as_ref().expect("own database").drop_now();
        let listed = app.get("/v1/automations").await;
        assert_eq!(
            (listed.status, listed.error_code()),
            (503, "SERVICE_UNAVAILABLE"),
            "{:?}",
            listed.body
        );
        assert!(listed.headers.contains_key("retry-after"));
        let fired = app
            .fire(&trigger, &json!({"payload": {"email": "o@b.co"}}), None)
            .await;
        assert_eq!(
            (fired.status, &fired.body["code"]),
            (503, &json!("SERVICE_UNAVAILABLE")),
            "{:?}",
            fired.body
        );
        assert!(fired.headers.contains_key("retry-after"));
        // Concurrent fires share a batch, and its failure reaches each of them as a 503.
        let bodies: Vec<_> = (0..20)
            .map(|i| json!({"payload": {"email": format!("o{i}@b.co")}}))
            .collect();
        let fired =
            futures::future::join_all(bodies.iter().map(|body| app.fire(&trigger, body, None)))
                .await;
        for reply in fired {
            assert_eq!(reply.status, 503, "{:?}", reply.body);
        }
    }
}
