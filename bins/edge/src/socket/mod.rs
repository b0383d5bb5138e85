//! The sockets: the listener ([`server`]), one socket's life ([`connection`]), its shared handle ([`conn`]) and the
//! client commands ([`cmd`]).

pub mod cmd;
pub mod conn;
pub mod connection;
pub mod server;
