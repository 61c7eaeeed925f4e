//! hsmux PKCS#11 module.
