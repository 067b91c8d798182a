//go:build !linux

package moto_test

// The process-death test is Linux only; elsewhere there is no helper.
const helperEnv = "MOTO_TEST_HELPER"

func helperStartAndHang() {}
