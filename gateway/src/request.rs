//! The request type every handler takes.

use hyper::body::Incoming;

pub type Request = http::Request<Incoming>;
