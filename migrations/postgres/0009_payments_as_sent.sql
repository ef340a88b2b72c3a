-- Payments as the providers really send them (issues 18, 19 and 14): refunds mapped to the payment
-- they return, provider events ordered by their own time, deliveries Usher cannot store kept for
-- the admins, money of an expired invoice kept for the admins, and manual payments.

-- What a payment buys and where its interval may sit. A subscriber's applied payments are laid
-- out one after another in the order of provider_time (the provider's own time of the payment,
-- not its arrival), each starting no earlier than applied_at; a payment covers one cover_period
-- (a plan period) or cover_secs (a manual payment's fixed length). payment_ref is the Stripe
-- payment intent that paid it, to map a refund that names no invoice.
ALTER TABLE payment ADD COLUMN payment_ref TEXT;
ALTER TABLE payment ADD COLUMN provider_time TIMESTAMPTZ;
ALTER TABLE payment ADD COLUMN applied_at TIMESTAMPTZ;
ALTER TABLE payment ADD COLUMN cover_period TEXT;
ALTER TABLE payment ADD COLUMN cover_secs BIGINT CHECK (cover_secs IS NULL OR cover_secs > 0);
ALTER TABLE payment ADD COLUMN note TEXT;
CREATE INDEX payment_by_ref ON payment (provider, payment_ref) WHERE payment_ref IS NOT NULL;

-- A validly signed delivery Usher could not store (the parser or a constraint refused it): kept
-- with the reason, answered 200 so the provider stops retrying, and listed for the admins.
ALTER TABLE webhook_event ADD COLUMN rejected_reason TEXT;
CREATE INDEX webhook_event_rejected ON webhook_event (received_at) WHERE rejected_reason IS NOT NULL;

-- Refunds and reversals as the providers report them. provider_refund_id is the provider's key
-- for this report (replays insert nothing); provider_txn_id names the payment it returns when
-- known (an invoice, a sale, a capture), payment_ref a Stripe payment intent otherwise. status:
-- waiting (its payment has not arrived: applied when it does), applied (the whole payment went
-- back), partial (recorded, access unchanged), unmatched (no payment of Usher's: for the admins).
-- cumulative: amount_minor is everything refunded of that payment so far, not this refund alone.
CREATE TABLE refund (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider           TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal', 'plisio', 'manual')),
    provider_refund_id TEXT NOT NULL,
    provider_txn_id    TEXT,
    payment_ref        TEXT,
    payment_id         BIGINT REFERENCES payment (id) ON DELETE RESTRICT,
    subscriber_id      BIGINT REFERENCES subscriber (id) ON DELETE RESTRICT,
    kind               TEXT NOT NULL CHECK (kind IN ('refund', 'reversal')),
    amount_minor       BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency           TEXT NOT NULL CHECK (length(currency) = 3),
    cumulative         BOOLEAN NOT NULL,
    provider_full      BOOLEAN NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('waiting', 'applied', 'partial', 'unmatched')),
    created_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, provider_refund_id)
);
CREATE INDEX refund_waiting_txn ON refund (provider, provider_txn_id) WHERE status = 'waiting';
CREATE INDEX refund_payment ON refund (payment_id);

-- Money that came in for an invoice that expired before it was paid in full (a Plisio invoice
-- paid in part): it bought nothing, so the admins decide. paid is the amount as the provider
-- wrote it in paid_currency (a crypto id); amount_minor/currency its worth in the invoice's fiat.
CREATE TABLE partial_payment (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider         TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal', 'plisio', 'manual')),
    provider_txn_id  TEXT NOT NULL,
    reference        TEXT,
    subscriber_id    BIGINT REFERENCES subscriber (id) ON DELETE RESTRICT,
    paid             TEXT NOT NULL,
    paid_currency    TEXT NOT NULL,
    amount_minor     BIGINT CHECK (amount_minor IS NULL OR amount_minor >= 0),
    currency         TEXT CHECK (currency IS NULL OR length(currency) = 3),
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, provider_txn_id)
);

-- The latest status a provider reported for one of its subscriptions, linked or not, with the
-- provider's own time of that report: an older report never overwrites a newer one, and an
-- ended subscription (deleted, cancelled, expired) stays ended whatever arrives after.
-- provider_subscription.status/renewing mirror it once the subscription is linked.
CREATE TABLE provider_subscription_state (
    provider                 TEXT NOT NULL,
    provider_subscription_id TEXT NOT NULL,
    status                   TEXT NOT NULL,
    renewing                 BOOLEAN NOT NULL,
    ended                    BOOLEAN NOT NULL,
    status_at                TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, provider_subscription_id)
);
