package model

// CodeRateLimited is the code of an answer 429 Too Many Requests: the
// client asked too often (the sign-in endpoints, per client and overall);
// it may try again after the answer's Retry-After.
const CodeRateLimited = 1021
