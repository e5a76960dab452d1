/* libpcre2-8 through dlopen: building needs no PCRE2 headers; a machine without the library uses the Python path. */
#include "native.h"

Pcre2Lib P2;

const char *pcre2_problem = NULL;

void load_pcre2(void) {
    static const char *names[] = {"libpcre2-8.so.0", "libpcre2-8.so", "libpcre2-8.0.dylib", "libpcre2-8.dylib", NULL};
    for (int i = 0; names[i] && !P2.lib; i++)
        P2.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!P2.lib) {
        pcre2_problem = "libpcre2-8 not found";
        return;
    }
#define SYM(field, name, type)                              \
    P2.field = (type)dlsym(P2.lib, name);                   \
    if (!P2.field) {                                        \
        pcre2_problem = "libpcre2-8 lacks " name;           \
        return;                                             \
    }
    SYM(compile, "pcre2_compile_8", p2_compile_t)
    SYM(jit_compile, "pcre2_jit_compile_8", p2_jit_compile_t)
    SYM(md_create, "pcre2_match_data_create_from_pattern_8", p2_md_create_t)
    SYM(match, "pcre2_match_8", p2_match_t)
    SYM(ovector, "pcre2_get_ovector_pointer_8", p2_ovector_t)
    SYM(code_free, "pcre2_code_free_8", p2_free_t)
    SYM(md_free, "pcre2_match_data_free_8", p2_free_t)
    SYM(mctx_free, "pcre2_match_context_free_8", p2_free_t)
    SYM(jstack_free, "pcre2_jit_stack_free_8", p2_free_t)
    SYM(info, "pcre2_pattern_info_8", p2_info_t)
    SYM(errmsg, "pcre2_get_error_message_8", p2_errmsg_t)
    SYM(mctx_create, "pcre2_match_context_create_8", p2_mctx_create_t)
    SYM(jstack_create, "pcre2_jit_stack_create_8", p2_jstack_create_t)
    SYM(jstack_assign, "pcre2_jit_stack_assign_8", p2_jstack_assign_t)
#undef SYM
}
