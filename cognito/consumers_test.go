package cognito_test

import (
	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/preflight"
	"github.com/resetq/resetq/report"
)

// The adapter fills the interfaces its consumers declare; the assertions
// live in a test so that the adapter imports no command's package.
var (
	_ preflight.Prober  = (*cognito.Pools)(nil)
	_ report.UserGetter = (*cognito.Users)(nil)
	_ report.UserPager  = (*cognito.Users)(nil)
)
