#include "mock.h"
const char *mock_bedrock_error_type(int status) { (void)status; return "InternalServerException"; }
void mock_bedrock_handle(mock_call_t *call, const char *model_id, const char *action) { (void)model_id; (void)action; mock_reply_error(call, 501, "todo"); }
