#include "mock.h"
json_t *mock_anthropic_error_body(int status, const char *message) { (void)status; return json_pack("{s:s,s:{s:s,s:s}}","type","error","error","type","api_error","message",message); }
void mock_anthropic_handle(mock_call_t *call) { mock_reply_error(call, 501, "todo"); }
void mock_anthropic_models(mock_call_t *call) { mock_reply_error(call, 501, "todo"); }
