#[test] fn f() { assert!(usher::fakes_on()); }
