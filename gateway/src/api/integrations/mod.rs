//! Payment-provider events in: a brand registers an endpoint for Stripe or
//! Shopify with the provider's signing secret (`/api/v1/integrations`,
//! admin), and the provider posts its events to
//! `/api/v1/integrations/{provider}/{id}`, authenticated by its signature
//! alone (routed before the API key check).
//!
//! An event is verified on the raw body ([`signature`]), mapped to a
//! conversion in the format of `POST /api/v1/conversions` ([`stripe`],
//! [`shopify`]) and reported through the same path as that endpoint, so
//! attribution, fraud checks, idempotency and earnings are decided alike.

mod inbound;
mod mapped;
mod registry;
mod shopify;
mod signature;
mod stripe;

pub(super) use inbound::receive;
pub(super) use registry::{create, delete, get, list, patch};
