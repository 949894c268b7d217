pub mod wire {}
