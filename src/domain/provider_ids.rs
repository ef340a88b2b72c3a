//! The ids a plan is sold under at the payment providers: a Stripe price (`price_…`) and a PayPal
//! billing plan (`P-…`). The rule they keep: an id is checked once, when an admin types it, and
//! the refusal never repeats what was typed (an admin who pastes a secret key by mistake does not
//! see it echoed back, nor does it reach a log).

use std::fmt;

/// Longest id accepted (Stripe documents no limit; theirs are about 30 characters).
const MAX_LEN: usize = 255;

/// Why a typed provider id was refused. The message never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderIdError {
    /// Nothing was typed.
    #[error("the {0} is empty; copy it from the provider's dashboard")]
    Empty(&'static str),
    /// A Stripe key, not a price id.
    #[error(
        "that is a Stripe key, not a price id; never paste keys into Discord (roll the key in Stripe if it was a live one)"
    )]
    LooksLikeSecret,
    /// Not shaped like a Stripe price id.
    #[error(
        "a Stripe price id starts with `price_` followed by letters, digits or underscores (e.g. `price_1MoBy5LkdIwHu7ix`); copy it from the price's page in Stripe"
    )]
    NotStripePrice,
    /// Not shaped like a PayPal plan id.
    #[error(
        "a PayPal plan id starts with `P-` followed by letters and digits (e.g. `P-5ML4271244454362WXNWU5NQ`); copy it from the plan's page in PayPal"
    )]
    NotPaypalPlan,
}

fn valid_tail(tail: &str, underscores: bool) -> bool {
    !tail.is_empty()
        && tail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (underscores && b == b'_'))
}

/// A Stripe price id (`price_…`), the price a Checkout Session sells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripePriceId(String);

impl StripePriceId {
    /// Reads an id typed by an admin; surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, ProviderIdError> {
        let id = input.trim();
        if id.is_empty() {
            return Err(ProviderIdError::Empty("Stripe price id"));
        }
        if ["sk_", "rk_", "pk_", "whsec_"]
            .iter()
            .any(|p| id.starts_with(p))
        {
            return Err(ProviderIdError::LooksLikeSecret);
        }
        match id.strip_prefix("price_") {
            Some(tail) if id.len() <= MAX_LEN && valid_tail(tail, true) => Ok(Self(id.to_owned())),
            _ => Err(ProviderIdError::NotStripePrice),
        }
    }

    /// The id as Stripe spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StripePriceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripePriceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A PayPal billing plan id (`P-…`), the plan a PayPal subscription follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaypalPlanId(String);

impl PaypalPlanId {
    /// Reads an id typed by an admin; surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, ProviderIdError> {
        let id = input.trim();
        if id.is_empty() {
            return Err(ProviderIdError::Empty("PayPal plan id"));
        }
        match id.strip_prefix("P-") {
            Some(tail) if id.len() <= MAX_LEN && valid_tail(tail, false) => Ok(Self(id.to_owned())),
            _ => Err(ProviderIdError::NotPaypalPlan),
        }
    }

    /// The id as PayPal spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PaypalPlanId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PaypalPlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stripe_price_ids_are_trimmed_and_checked() {
        assert_eq!(
            StripePriceId::parse("  price_1MoBy5LkdIwHu7ix ")
                .unwrap()
                .as_str(),
            "price_1MoBy5LkdIwHu7ix"
        );
        assert!(StripePriceId::parse("price_standard_monthly").is_ok());
        assert_eq!(
            StripePriceId::parse(" "),
            Err(ProviderIdError::Empty("Stripe price id"))
        );
        for bad in [
            "price_",
            "prod_123",
            "P-123",
            "price_12 3",
            "price_é",
            "PRICE_1",
        ] {
            assert_eq!(
                StripePriceId::parse(bad),
                Err(ProviderIdError::NotStripePrice),
                "{bad}"
            );
        }
        assert_eq!(
            StripePriceId::parse(&format!("price_{}", "a".repeat(300))),
            Err(ProviderIdError::NotStripePrice)
        );
    }

    #[test]
    fn a_pasted_stripe_key_is_refused_without_being_repeated() {
        for key in ["sk_live_51Habc", "rk_test_1", "whsec_abc", "pk_live_x"] {
            let err = StripePriceId::parse(key).unwrap_err();
            assert_eq!(err, ProviderIdError::LooksLikeSecret);
            assert!(!err.to_string().contains(key));
        }
    }

    #[test]
    fn paypal_plan_ids_are_trimmed_and_checked() {
        assert_eq!(
            PaypalPlanId::parse(" P-5ML4271244454362WXNWU5NQ\n")
                .unwrap()
                .as_str(),
            "P-5ML4271244454362WXNWU5NQ"
        );
        assert_eq!(
            PaypalPlanId::parse(""),
            Err(ProviderIdError::Empty("PayPal plan id"))
        );
        for bad in ["P-", "p-123", "PLAN-1", "P-12_3", "P-1 2", "price_1"] {
            assert_eq!(
                PaypalPlanId::parse(bad),
                Err(ProviderIdError::NotPaypalPlan),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = StripePriceId::parse(&input);
            let _ = PaypalPlanId::parse(&input);
        }
    }
}
