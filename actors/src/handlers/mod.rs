//! The built-in handlers: `echo`, `sleep`, `pdf-text` and `image-normalize`.
