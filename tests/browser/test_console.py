"""The console in a real browser: sign in, create a connection, watch a signed delivery
arrive live, open it, replay it; a wrong key shows an error."""

import base64
import json
import pathlib
import secrets
import time
from datetime import datetime, timezone

import requests
from playwright.sync_api import expect
from svix.webhooks import Webhook

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "clerk" / "user.created.json"


def sign_in(page, gateway):
    url, key = gateway
    page.goto(url + "/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Connections", level=1)).to_be_visible()


def test_a_wrong_api_key_shows_an_error(page, gateway):
    url, _ = gateway
    page.goto(url + "/console")
    page.get_by_label("API key").fill("fh_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#sign-in-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("INVALID_API_KEY")
    expect(page.get_by_role("navigation")).to_be_hidden()


def test_assets_are_served_with_their_types_and_a_strict_policy(gateway):
    url, _ = gateway
    for path, kind in [("/console", "text/html"), ("/console/app.js", "text/javascript"),
                       ("/console/app.css", "text/css")]:
        res = requests.get(url + path, timeout=10)
        assert res.status_code == 200
        assert res.headers["content-type"].startswith(kind)
        policy = res.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert res.headers["x-content-type-options"] == "nosniff"


def test_a_signed_delivery_appears_live_and_can_be_replayed(page, gateway, api, screenshots):
    url, _ = gateway
    fixture = json.loads(FIXTURE.read_text())
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    name = "Clerk " + secrets.token_hex(3)

    sign_in(page, gateway)
    form = page.locator("#new-connection")
    form.get_by_label("Provider").select_option("clerk")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Signing secret").fill(secret)
    form.get_by_role("button", name="Create connection").click()
    card = page.locator("article.card", has=page.get_by_role("heading", name=name))
    expect(card).to_be_visible()
    receive_url = card.locator("dd.url code").inner_text()
    assert receive_url.startswith(url + "/api/integrations/clerk/webhook/con_")
    connection_id = receive_url.rsplit("/", 1)[1]

    # Bind and publish an automation, so the delivery starts a run.
    trigger = f"clerk:{connection_id}:user.created"
    automation = api("POST", "/v1/automations", json={
        "name": "Welcome", "triggerEventId": trigger,
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "e", "type": "sendEmail"}],
        "connections": [{"from": "t", "to": "e"}]})
    api("PATCH", f"/v1/automations/{automation['automationId']}", json={"published": True})

    page.get_by_role("link", name="Deliveries").click()
    expect(page.get_by_role("heading", name="Inbound deliveries")).to_be_visible()
    expect(page.locator("#live-state")).to_contain_text("Live:")

    # The fixture's exact body, signed now with the connection's secret by Svix's SDK.
    body = fixture["body"]
    msg_id = "msg_" + secrets.token_hex(12)
    now = datetime.now(tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id, now, body)
    headers = {**fixture["headers"], "svix-id": msg_id,
               "svix-timestamp": str(int(now.timestamp())), "svix-signature": signature}
    res = requests.post(receive_url, data=body.encode(), headers=headers, timeout=10)
    assert res.status_code == 200, res.text
    delivered = res.json()
    assert delivered["status"] == "triggered"

    row = page.locator(f"tr[data-delivery='{delivered['deliveryId']}']")
    expect(row).to_be_visible()  # arrived over the events stream, no reload
    expect(row).to_contain_text("triggered")
    row.get_by_role("button", name="Open").click()
    detail = page.locator("#delivery-detail")
    expect(detail.get_by_role("heading", name=f"Delivery {delivered['deliveryId']}")).to_be_visible()
    expect(detail).to_contain_text("[redacted]")
    expect(detail.locator("pre.body")).to_contain_text("jane.doe")
    assert signature not in detail.inner_text()

    detail.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-result")).to_contain_text("duplicate")
    detail.get_by_label("Force (fire again even if it fired)").check()
    detail.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-result")).to_contain_text("triggered")
    expect(page.locator("#replay-result")).to_contain_text("run_")

    page.screenshot(path=str(screenshots / "deliveries.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Connections").click()
    expect(card).to_be_visible()
    page.screenshot(path=str(screenshots / "connections-phone.png"), full_page=True)
    print(f"screenshots in {screenshots}")


def test_fires_appear_live(page, gateway, api):
    sign_in(page, gateway)
    page.get_by_role("link", name="Fires").click()
    expect(page.locator("#live-state")).to_contain_text("Live:")
    trigger = api("POST", "/v1/automations/triggers", json={
        "title": "Browser test", "payloadSchema": {"fields": [
            {"key": "email", "type": "string", "required": True}]}})
    url, key = gateway
    res = requests.post(f"{url}/v1/automations/triggers/{trigger['triggerEventId']}/fire",
                        json={"payload": {"email": "live@example.com"}},
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)
    instance = res.json()["details"]["triggerInstanceId"]
    row = page.locator(f"tr[data-fire='{instance}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("live@example.com")


def test_the_keyboard_reaches_every_section(page, gateway):
    url, key = gateway
    page.goto(url + "/console")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.get_by_label("API key").focus()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Connections", level=1)).to_be_focused()
    links = page.get_by_role("navigation").get_by_role("link")
    for i in range(links.count()):
        link = links.nth(i)
        link.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#view h1")).to_be_focused()
        expect(link).to_have_attribute("aria-current", "page")


def test_outbound_deliveries_show_their_attempts_and_can_be_retried(page, gateway, api):
    subscription = api("POST", "/v1/webhook-subscriptions", json={
        "url": "http://127.0.0.1:9/hooks", "events": ["trigger.fired"]})
    trigger = api("POST", "/v1/automations/triggers", json={
        "title": "Outbound test", "payloadSchema": {"fields": [
            {"key": "email", "type": "string", "required": True}]}})
    url, key = gateway
    requests.post(f"{url}/v1/automations/triggers/{trigger['triggerEventId']}/fire",
                  json={"payload": {"email": "out@example.com"}},
                  headers={"Authorization": f"Bearer {key}"}, timeout=10)
    # The first send fails (nothing listens there); wait for it to be recorded.
    query = f"/v1/webhook-subscriptions/deliveries?subscriptionId={subscription['subscriptionId']}"
    deadline = time.monotonic() + 15
    while not (deliveries := api("GET", query)["data"]) or not deliveries[0]["attempts"]:
        assert time.monotonic() < deadline, "no attempt recorded within 15 s"
        time.sleep(0.2)
    delivery = deliveries[0]

    sign_in(page, gateway)
    page.get_by_role("link", name="Outbound").click()
    expect(page.get_by_role("heading", name="Outbound webhooks")).to_be_visible()
    expect(page.get_by_role("table", name="Subscriptions")).to_contain_text("http://127.0.0.1:9/hooks")
    page.get_by_role("button", name=f"Retry {delivery['deliveryId']}").click()
    expect(page.get_by_text(f"Retry of {delivery['deliveryId']} sent.")).to_be_visible()
