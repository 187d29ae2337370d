//! Real-time delivery: the hub (mailboxes, numbering, replay) and the WebSocket connections.

pub mod hub;
pub mod socket;

pub use hub::Hub;
