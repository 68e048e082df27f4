//! Provisioning through firehook's own API, so that deliveries start real runs: a
//! connection or trigger, and a published automation bound to it.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use hyper::Method;
use serde_json::{json, Value};

use crate::load::Conn;
use crate::sign::SvixSecret;
use crate::workload::Prepared;

/// Calls the API, on a fresh connection each time (keep-alive would time out during a run).
pub struct Api {
    addr: SocketAddr,
    auth: HeaderMap,
}

impl Api {
    pub fn new(addr: SocketAddr, api_key: &str) -> anyhow::Result<Api> {
        let mut auth = HeaderMap::new();
        auth.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {api_key}"))?,
        );
        Ok(Api { addr, auth })
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let req = Prepared::new(
            method.clone(),
            path,
            self.auth.clone(),
            serde_json::to_vec(&body)?.into(),
        );
        let (status, answer) = Conn::open(self.addr).await?.send(&req).await?;
        if !status.is_success() {
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(serde_json::from_slice(&answer)?)
    }

    /// A connection for `provider` with `secret`, and a published automation on its `event`
    /// trigger; answers the connection's receive path.
    async fn connection(
        &self,
        provider: &str,
        secret: &str,
        event: &str,
    ) -> anyhow::Result<String> {
        let created = self
            .call(
                Method::POST,
                "/v1/integrations/connections",
                json!({"provider": provider, "secrets": [secret]}),
            )
            .await?;
        let id = created["connectionId"]
            .as_str()
            .context("no connectionId")?;
        let trigger_id = format!("{provider}:{id}:{event}");
        let provisioned = created["triggers"].as_array().context("no triggers")?;
        if !provisioned
            .iter()
            .any(|t| t["triggerEventId"] == trigger_id.as_str())
        {
            bail!("the {provider} connection did not provision {trigger_id}");
        }
        self.publish_automation(&trigger_id).await?;
        Ok(format!("/api/integrations/{provider}/webhook/{id}"))
    }

    pub async fn clerk(&self, secret: &SvixSecret) -> anyhow::Result<String> {
        self.connection("clerk", &secret.text(), "user.created")
            .await
    }

    pub async fn stripe(&self, secret: &str) -> anyhow::Result<String> {
        self.connection("stripe", secret, "customer.created").await
    }

    /// An API trigger with a published automation; answers its fire path.
    pub async fn api_trigger(&self) -> anyhow::Result<String> {
        let schema = json!({"fields": [
            {"key": "email", "type": "string", "required": true},
            {"key": "firstName", "type": "string", "required": false},
            {"key": "lastName", "type": "string", "required": false},
            {"key": "plan", "type": "string", "required": false}
        ]});
        let created = self
            .call(
                Method::POST,
                "/v1/automations/triggers",
                json!({"title": "Signed up", "payloadSchema": schema}),
            )
            .await?;
        let trigger_id = created["triggerEventId"]
            .as_str()
            .context("no triggerEventId")?
            .to_owned();
        self.publish_automation(&trigger_id).await?;
        Ok(format!("/v1/automations/triggers/{trigger_id}/fire"))
    }

    async fn publish_automation(&self, trigger_id: &str) -> anyhow::Result<()> {
        let automation = json!({
            "name": "Welcome email",
            "triggerEventId": trigger_id,
            "nodes": [{"id": "t", "type": "trigger"}, {"id": "e", "type": "sendEmail"}],
            "connections": [{"from": "t", "to": "e"}]
        });
        let created = self
            .call(Method::POST, "/v1/automations", automation)
            .await?;
        let id = created["automationId"]
            .as_str()
            .context("no automationId")?;
        self.call(
            Method::PATCH,
            &format!("/v1/automations/{id}"),
            json!({"published": true}),
        )
        .await?;
        Ok(())
    }

    /// The server's own count of what it did: fires by outcome, duplicates, rejections.
    /// A webhook subscription to every event type, sent to `url`.
    pub async fn subscribe_all(&self, url: &str) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            "/v1/webhook-subscriptions",
            json!({"url": url, "events": ["*"]}),
        )
        .await?;
        Ok(())
    }

    pub async fn counters(&self) -> anyhow::Result<String> {
        let (_, text) = Conn::open(self.addr)
            .await?
            .send(&Prepared::get("/metrics"))
            .await?;
        let text = String::from_utf8_lossy(&text);
        let counters: Vec<String> = text
            .lines()
            .filter(|l| {
                [
                    "firehook_fires_total",
                    "firehook_duplicates_total",
                    "firehook_verification_failures_total",
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .map(|l| l.trim_start_matches("firehook_").to_owned())
            .collect();
        Ok(counters.join(", "))
    }
}
