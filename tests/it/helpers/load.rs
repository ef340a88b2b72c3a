//! Load for the whole-process tests: subscribers with linked Stripe subscriptions seeded straight
//! into the store, and signed `invoice.paid` deliveries that each apply one payment (the shape
//! the webhook benchmark sends).

use usher::integrations::payments::stripe::sign_header;
use usher::store::Db;

/// A monthly plan and `n` subscribers (Discord ids 1001…) on it, each with a linked Stripe
/// subscription `sub_load_<id>`; returns the subscription ids in subscriber order.
pub async fn seed(db: &Db, n: i64) -> Vec<String> {
    let now = chrono::Utc::now();
    let mut tx = db.begin().await.expect("begin");
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO plan (name, price_minor, currency, period, max_streams, stripe_price_id, \
         created_at) VALUES ('Load', 800, 'USD', 'month', 2, 'price_load', $1)"
    )
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))
    .expect("plan");
    for i in 1..=n {
        usher::on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO subscriber (discord_id, display_name, plan_id, created_at, updated_at) \
             VALUES ($1, $2, (SELECT id FROM plan WHERE name = 'Load'), $3, $3)"
        )
        .bind(1000 + i)
        .bind(format!("user{i}"))
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
        .expect("subscriber");
    }
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO provider_subscription (provider, provider_subscription_id, subscriber_id, \
         plan_id, customer_id, status, renewing, updated_at) \
         SELECT 'stripe', 'sub_load_' || id, id, plan_id, 'cus_load_' || id, 'active', TRUE, $1 \
         FROM subscriber"
    )
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))
    .expect("subscriptions");
    let subscriptions: Vec<String> = usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT provider_subscription_id FROM provider_subscription ORDER BY subscriber_id"
    )
    .fetch_all(c)
    .await)
    .expect("subscription ids");
    tx.commit().await.expect("commit");
    subscriptions
}

/// A signed `invoice.paid` (Stripe's basil shape) renewing `subscription`, event number `i`:
/// the body and its `Stripe-Signature`.
pub fn invoice_paid(i: usize, subscription: &str, secret: &str) -> (Vec<u8>, String) {
    let now = chrono::Utc::now();
    let customer = subscription.replace("sub_", "cus_");
    let (start, end) = (
        now.timestamp(),
        (now + chrono::Duration::days(30)).timestamp(),
    );
    let event = serde_json::json!({
        "id": format!("evt_load_{i:08}"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": start,
        "data": {"object": {
            "id": format!("in_load_{i:08}"),
            "object": "invoice",
            "amount_paid": 800,
            "amount_due": 800,
            "billing_reason": "subscription_cycle",
            "created": start,
            "currency": "usd",
            "customer": customer,
            "customer_email": format!("{customer}@example.com"),
            "lines": {"object": "list", "has_more": false, "data": [{
                "id": format!("il_load_{i:08}"),
                "object": "line_item",
                "amount": 800,
                "currency": "usd",
                "period": {"start": start, "end": end},
                "quantity": 1,
            }]},
            "livemode": false,
            "metadata": {},
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"metadata": {}, "subscription": subscription},
            },
            "status": "paid",
            "total": 800,
        }},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "invoice.paid",
    });
    let body = serde_json::to_vec(&event).expect("an event serialises");
    let header = sign_header(&body, secret, now.timestamp());
    (body, header)
}

/// Counts the rows of `table` (a name from this file's callers, never user input).
pub async fn count(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    usher::on_db!(db, |pool| sqlx::query_scalar::<_, i64>(&sql)
        .fetch_one(pool)
        .await
        .expect("count"))
}
