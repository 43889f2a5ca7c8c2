#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jpki_pkcs11_fuzz::session_objects::run(data);
});
