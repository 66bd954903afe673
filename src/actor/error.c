/* Error codes: names and messages, from the one list in troupe.h. */
#include "troupe.h"

const char *tr_strerror(int err)
{
    switch (err) {
    case TR_OK:
        return "success";
#define TR_ERR_TEXT(name, code, text) \
    case TR_##name:                   \
        return text;
        TR_ERRNO_MAP(TR_ERR_TEXT)
#undef TR_ERR_TEXT
    }
    return "unknown error";
}

const char *tr_err_name(int err)
{
    switch (err) {
    case TR_OK:
        return "TR_OK";
#define TR_ERR_NAME(name, code, text) \
    case TR_##name:                   \
        return "TR_" #name;
        TR_ERRNO_MAP(TR_ERR_NAME)
#undef TR_ERR_NAME
    }
    return "TR_UNKNOWN";
}
