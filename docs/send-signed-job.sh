#!/bin/sh
# Send one signed resetq job with the AWS CLI and openssl: the recipe for
# producers other than `resetq enqueue`. Workers run with
# --signing-key-file accept a job only if its resetq.signature attribute is
# the hex HMAC-SHA256, under one of their keys, of the campaign, a newline,
# and the body, byte for byte.
#
#   QUEUE_URL=https://sqs... KEY_FILE=keys CAMPAIGN=incident-42 \
#     sh send-signed-job.sh '{"UserPoolId":"eu-west-1_AbC123","Username":"alice"}'
#
# KEY_FILE is the workers' key file: the first key that is not a comment
# signs. AWS_ENDPOINT_URL, when set, is passed to the CLI (local emulators).
# SIGN_OUT=true asks for the user's sessions to be ended before the reset
# (the resetq.global-sign-out attribute, signed in front of the rest).
set -eu
BODY=$1
KEY=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$KEY_FILE" | head -n 1 | tr -d '[:space:]')
if [ "${SIGN_OUT:-}" = true ]; then
  SIG=$(printf 'resetq.global-sign-out=true\n%s\n%s' "$CAMPAIGN" "$BODY" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1)
  EXTRA=',"resetq.global-sign-out":{"DataType":"String","StringValue":"true"}'
else
  SIG=$(printf '%s\n%s' "$CAMPAIGN" "$BODY" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1)
  EXTRA=''
fi
aws ${AWS_ENDPOINT_URL:+--endpoint-url "$AWS_ENDPOINT_URL"} sqs send-message \
  --queue-url "$QUEUE_URL" --message-body "$BODY" --message-attributes "$(printf \
  '{"resetq.campaign":{"DataType":"String","StringValue":"%s"},"resetq.signature":{"DataType":"String","StringValue":"%s"}%s}' \
  "$CAMPAIGN" "$SIG" "$EXTRA")"
