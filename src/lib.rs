pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod memory;
pub mod routes;
pub mod startup;
pub mod telemetry;
