package postgres

// TranslateForTest exposes translate to the external tests.
var TranslateForTest = translate
