#include "mock.h"
json_t *mock_gemini_error_body(int status, const char *message) { return json_pack("{s:{s:i,s:s,s:s}}","error","code",status,"message",message,"status","INTERNAL"); }
void mock_gemini_handle(mock_call_t *call, const char *model, const char *method) { (void)model; (void)method; mock_reply_error(call, 501, "todo"); }
void mock_gemini_models(mock_call_t *call) { mock_reply_error(call, 501, "todo"); }
