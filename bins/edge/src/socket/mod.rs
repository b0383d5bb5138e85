//! The sockets: the listener ([`server`]), one socket's life ([`connection`]), its shared handle ([`conn`]) and the
//! client commands ([`cmd`]), limited per socket ([`rate`]).

pub mod cmd;
pub mod conn;
pub mod connection;
pub mod rate;
pub mod server;
