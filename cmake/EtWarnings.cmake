# Warnings every target gets (as in curl's PickyWarnings), plus -Wconversion where asked.
set(ET_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
  -Wcast-qual -Wwrite-strings -Wimplicit-fallthrough -Wvla)
if(ET_WERROR)
  list(APPEND ET_WARNING_FLAGS -Werror)
endif()

# et_warnings(target [CONVERSION]) applies the project's warnings to a target.
function(et_warnings target)
  target_compile_options(${target} PRIVATE ${ET_WARNING_FLAGS})
  if("CONVERSION" IN_LIST ARGN)
    target_compile_options(${target} PRIVATE -Wconversion -Wsign-conversion)
  endif()
endfunction()
