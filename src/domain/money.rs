//! `Money` and `Currency`. Amounts are whole minor units in an `i64` (cents, yen) — never floats —
//! and always travel with their currency, whose ISO 4217 exponent decides how they are written.

use std::fmt;
use std::str::FromStr;

/// Currencies whose minor unit is not a hundredth (ISO 4217 exponent other than 2).
const EXPONENTS: &[(&str, u32)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

/// A three-letter ISO 4217 currency code, stored upper-case.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Why a string is not a currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a currency is a three-letter code such as USD or EUR")]
pub struct CurrencyError;

impl Currency {
    /// Parses a three-letter code in any case (`usd` and `USD` are the same currency).
    pub fn parse(input: &str) -> Result<Self, CurrencyError> {
        match input.trim().as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(CurrencyError),
        }
    }

    /// The upper-case code.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// Number of decimal digits of the minor unit (2 for USD, 0 for JPY, 3 for KWD).
    pub fn exponent(self) -> u32 {
        EXPONENTS
            .iter()
            .find(|(code, _)| *code == self.as_str())
            .map_or(2, |&(_, exponent)| exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

/// An amount of money in minor units of its currency. Displays as `12.50 USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a plain decimal number like `12.50`.
    #[error("an amount is a number such as 12.50")]
    NotANumber,
    /// More decimals than the currency has.
    #[error("{currency} amounts have at most {exponent} decimals")]
    TooManyDecimals {
        /// The currency of the amount.
        currency: Currency,
        /// Its number of decimals.
        exponent: u32,
    },
    /// The amount does not fit.
    #[error("the amount is too large")]
    TooLarge,
}

impl Money {
    /// An amount already in minor units (as payment providers send them).
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Reads a non-negative decimal amount such as `12.50`, `12.5` or `12` in `currency`.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let amount = amount.trim();
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !is_digits(whole)
            || !is_digits(fraction)
            || (amount.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError::NotANumber);
        }
        let exponent = currency.exponent();
        let scale = 10_i64.pow(exponent);
        let padded = usize::try_from(exponent).expect("exponent is at most 3");
        if fraction.len() > padded {
            return Err(MoneyError::TooManyDecimals { currency, exponent });
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::TooLarge)?;
        let fraction: i64 = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<padded$}")
                .parse()
                .map_err(|_| MoneyError::NotANumber)?
        };
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(fraction))
            .ok_or(MoneyError::TooLarge)?;
        Ok(Self { minor, currency })
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10_u64.pow(exponent);
        let width = usize::try_from(exponent).expect("exponent is at most 3");
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn a_currency_is_upper_cased_and_validated() {
        assert_eq!(Currency::parse(" usd ").unwrap().as_str(), "USD");
        for bad in ["", "US", "USDT", "U$D", "ÜSD"] {
            assert_eq!(Currency::parse(bad), Err(CurrencyError), "{bad}");
        }
    }

    #[test]
    fn money_displays_with_the_currency_exponent() {
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(1250, usd()).to_string(), "12.50 USD");
        assert_eq!(Money::new(5, usd()).to_string(), "0.05 USD");
        assert_eq!(Money::new(-1250, usd()).to_string(), "-12.50 USD");
        assert_eq!(Money::new(1000, jpy).to_string(), "1000 JPY");
        assert_eq!(Money::new(1234, kwd).to_string(), "1.234 KWD");
        assert_eq!(
            Money::new(i64::MIN, usd()).to_string(),
            "-92233720368547758.08 USD"
        );
    }

    #[test]
    fn amounts_parse_into_minor_units() {
        assert_eq!(Money::parse("12.50", usd()).unwrap().minor(), 1250);
        assert_eq!(Money::parse("12.5", usd()).unwrap().minor(), 1250);
        assert_eq!(Money::parse(" 12 ", usd()).unwrap().minor(), 1200);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse("1000", jpy).unwrap().minor(), 1000);
    }

    #[test]
    fn bad_amounts_get_specific_errors() {
        for bad in ["", ".5", "12.", "1,00", "-1", "abc", "1.2.3", "+1"] {
            assert_eq!(
                Money::parse(bad, usd()),
                Err(MoneyError::NotANumber),
                "{bad}"
            );
        }
        assert_eq!(
            Money::parse("12.505", usd()),
            Err(MoneyError::TooManyDecimals {
                currency: usd(),
                exponent: 2
            })
        );
        assert!(matches!(
            Money::parse("1.5", Currency::parse("JPY").unwrap()),
            Err(MoneyError::TooManyDecimals { exponent: 0, .. })
        ));
        assert_eq!(
            Money::parse("92233720368547758.08", usd()),
            Err(MoneyError::TooLarge)
        );
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(minor in 0..i64::MAX, code in "(USD|JPY|KWD|EUR)") {
            let money = Money::new(minor, Currency::parse(&code).unwrap());
            let text = money.to_string();
            let (amount, currency) = text.split_once(' ').unwrap();
            prop_assert_eq!(Money::parse(amount, Currency::parse(currency).unwrap()), Ok(money));
        }

        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = Money::parse(&input, usd());
            let _ = Currency::parse(&input);
        }
    }
}
