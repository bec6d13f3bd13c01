/*
 * esp_err.h - ESP-IDF's error type and the codes the heap API returns.
 *
 * Values are ESP-IDF's, so code that compares against them ports unchanged.
 * Inside an ESP-IDF build the real esp_err.h comes first on the include path;
 * the guard name is the same, so only one is ever seen.
 */
#ifndef __ESP_ERR_H__
#define __ESP_ERR_H__

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int esp_err_t;

#define ESP_OK 0                      /**< success */
#define ESP_FAIL (-1)                 /**< generic failure (e.g. an illegal region overlap) */
#define ESP_ERR_NO_MEM 0x101          /**< out of memory */
#define ESP_ERR_INVALID_ARG 0x102     /**< an argument is invalid */
#define ESP_ERR_INVALID_STATE 0x103   /**< the call is not allowed in this state */
#define ESP_ERR_INVALID_SIZE 0x104    /**< a size is invalid (e.g. region too small for a heap) */
#define ESP_ERR_NOT_FOUND 0x105       /**< the requested resource was not found */
#define ESP_ERR_NOT_SUPPORTED 0x106   /**< the operation is not supported */

/** The code's name ("ESP_ERR_NO_MEM"), or "UNKNOWN ERROR". Never NULL. */
const char *esp_err_to_name(esp_err_t code);

#ifdef __cplusplus
}
#endif

#endif /* __ESP_ERR_H__ */
