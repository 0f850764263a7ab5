/*
 * examples/: where the specification's examples find their model file.
 *
 * The examples are the specification's code, compiled unchanged except for
 * the model path: each literal path ("model.tmai", "path/to/model.tmai",
 * "large_language_model.tmai") is written EXAMPLE_MODEL_PATH("<literal>"),
 * which is $TINYAI_EXAMPLE_MODEL when set (the tests point it at a .tmai
 * converted from the default model) and the literal otherwise, so that a
 * program run by hand behaves as the specification shows. Reading the
 * environment here is the example program's business, not the library's.
 */
#ifndef TINYAI_EXAMPLES_EXAMPLE_MODEL_H
#define TINYAI_EXAMPLES_EXAMPLE_MODEL_H

#include <stdlib.h>

static inline const char *example_model_path(const char *spec_literal) {
    const char *p = getenv("TINYAI_EXAMPLE_MODEL");
    return p && *p ? p : spec_literal;
}

#define EXAMPLE_MODEL_PATH(spec_literal) example_model_path(spec_literal)

#endif
