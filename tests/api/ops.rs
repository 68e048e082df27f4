//! The metrics token; readiness and API answers when the database goes away under a
//! running app. The latter PostgreSQL only: the
//! database is dropped (connections terminated) while the app serves. An embedded SQLite
//! file cannot be taken away from open connections in a way the suite can rely on.

mod metrics {
    use firehook::clock::Clock;
    use firehook::config::SecretString;

    use crate::helpers::{spawn_app_with, Backend};

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

    crate::each_backend!(metrics_can_require_a_token);
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
    }
}
