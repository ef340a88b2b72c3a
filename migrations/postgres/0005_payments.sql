-- Payments: what a checkout was for, the provider subscriptions that renew on their own, and the
-- provider ids a payment carries so a later event can find it.

-- One row per checkout link Usher made: our reference (sent to the provider as
-- client_reference_id / custom_id / order_number) names the subscriber and plan it is for.
CREATE TABLE checkout (
    reference     TEXT PRIMARY KEY NOT NULL,
    subscriber_id BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    plan_id       BIGINT NOT NULL REFERENCES plan (id) ON DELETE RESTRICT,
    provider      TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal', 'plisio')),
    -- The provider's id of the session / subscription / invoice, once known.
    provider_ref  TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);

-- A provider subscription (Stripe sub_…, PayPal I-…) once linked to a subscriber: later renewals
-- match on it. status is the provider's; renewing = it will charge again by itself.
CREATE TABLE provider_subscription (
    id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider                 TEXT NOT NULL,
    provider_subscription_id TEXT NOT NULL,
    subscriber_id            BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    plan_id                  BIGINT NOT NULL REFERENCES plan (id) ON DELETE RESTRICT,
    customer_id              TEXT,
    status                   TEXT NOT NULL,
    renewing                 BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at               TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, provider_subscription_id)
);
CREATE INDEX provider_subscription_subscriber ON provider_subscription (subscriber_id);

ALTER TABLE payment ADD COLUMN provider_subscription_id TEXT;
ALTER TABLE payment ADD COLUMN customer_id TEXT;
ALTER TABLE payment ADD COLUMN reference TEXT;
CREATE INDEX payment_provider_subscription ON payment (provider, provider_subscription_id);
