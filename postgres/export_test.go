package postgres

// TranslateForTest exposes translate to the external tests.
var TranslateForTest = translate

// EventQueryForTest exposes the audit trail's query builder.
var EventQueryForTest = (*Store).eventQuery
