//! Commission plans: how a code's conversions earn its creator.

use crate::ValidationError;
use serde::{Deserialize, Serialize};

/// How a creator earns from a code's conversions. Amounts are in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommissionPlan {
    /// ISO-4217 code, three uppercase letters.
    pub currency: String,
    /// Flat amount per attributed signup.
    #[serde(default)]
    pub signup_flat: u64,
    /// Share of each attributed purchase, in basis points (1000 = 10 %).
    #[serde(default)]
    pub purchase_bps: u32,
    /// Upper bound of the commission of one conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
}

impl CommissionPlan {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !crate::currency::is_currency(&self.currency) {
            return Err(ValidationError::new(
                "commission",
                "currency must be an ISO-4217 code such as EUR or USD",
            ));
        }
        if self.purchase_bps > 10_000 {
            return Err(ValidationError::new(
                "commission",
                "purchase_bps must be at most 10000 (100 %)",
            ));
        }
        let max = crate::currency::MAX_AMOUNT;
        if self.signup_flat > max || self.cap.is_some_and(|c| c > max) {
            return Err(ValidationError::new(
                "commission",
                format!("signup_flat and cap must be at most {max} (minor units)"),
            ));
        }
        Ok(())
    }
}
