pub mod adapter;
pub mod cookie;
pub mod error;
pub mod memory;
pub mod postgres;
pub mod session;
pub mod sqlite;
pub mod store;
