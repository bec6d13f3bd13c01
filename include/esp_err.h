/*
 * esp_err.h - ESP-IDF's error type, its generic codes and their names.
 *
 * Values are ESP-IDF's, so code that compares against them ports unchanged:
 * every generic code (0x101 to 0x10D) and the bases of the component ranges,
 * though the heap API returns only ESP_OK, ESP_FAIL and 0x101 to 0x106.
 * Inside an ESP-IDF build the real esp_err.h comes first on the include path;
 * the guard name is the same, so only one is ever seen.
 */
#ifndef __ESP_ERR_H__
#define __ESP_ERR_H__

#include <stddef.h>
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
#define ESP_ERR_TIMEOUT 0x107         /**< the operation timed out */
#define ESP_ERR_INVALID_RESPONSE 0x108 /**< a received response was invalid */
#define ESP_ERR_INVALID_CRC 0x109     /**< a CRC or checksum was invalid */
#define ESP_ERR_INVALID_VERSION 0x10A /**< a version was invalid */
#define ESP_ERR_INVALID_MAC 0x10B     /**< a MAC address was invalid */
#define ESP_ERR_NOT_FINISHED 0x10C    /**< the operation has not fully completed */
#define ESP_ERR_NOT_ALLOWED 0x10D     /**< the operation is not allowed */

#define ESP_ERR_WIFI_BASE 0x3000      /**< first code of the Wi-Fi range */
#define ESP_ERR_MESH_BASE 0x4000      /**< first code of the mesh range */
#define ESP_ERR_FLASH_BASE 0x6000     /**< first code of the flash range */
#define ESP_ERR_HW_CRYPTO_BASE 0xc000 /**< first code of the crypto hardware range */
#define ESP_ERR_MEMPROT_BASE 0xd000   /**< first code of the memory protection range */

/** The code's name ("ESP_ERR_NO_MEM"), or "UNKNOWN ERROR" for a code not
 * listed above (the range bases included). Never NULL. */
const char *esp_err_to_name(esp_err_t code);

/** The name as esp_err_to_name() gives it, copied into buf (buflen bytes,
 * cut to fit, NUL-terminated when buflen > 0); an unknown code reads
 * "UNKNOWN ERROR 0x<hex>(<decimal>)". Returns buf. Unlike ESP-IDF, an
 * errno value is not looked up with strerror_r() (docs/compat.md). */
const char *esp_err_to_name_r(esp_err_t code, char *buf, size_t buflen);

/**
 * ESP-IDF's checks of an esp_err_t, for code that ports unchanged (the tracing
 * and simulator examples use them). ESP_ERROR_CHECK(x): if x is not ESP_OK,
 * print ESP-IDF's message (code, name, file, line, function, expression) and
 * abort through the port (capheap_port_abort; replaceable). Under NDEBUG, as
 * in ESP-IDF, x is evaluated and not checked. ESP_ERROR_CHECK_WITHOUT_ABORT(x):
 * print the message if x is not ESP_OK, and return x either way.
 */
esp_err_t capheap_esp_error_check(esp_err_t rc, const char *file, int line, const char *function,
                                  const char *expression, int abort_on_error);

#ifdef NDEBUG
#define ESP_ERROR_CHECK(x)                                                                         \
    do {                                                                                           \
        esp_err_t err_rc_ = (x);                                                                   \
        (void)sizeof(err_rc_);                                                                     \
    } while (0)
#else
#define ESP_ERROR_CHECK(x) ((void)capheap_esp_error_check((x), __FILE__, __LINE__, __func__, #x, 1))
#endif
#define ESP_ERROR_CHECK_WITHOUT_ABORT(x) capheap_esp_error_check((x), __FILE__, __LINE__, __func__, #x, 0)

#ifdef __cplusplus
}
#endif

#endif /* __ESP_ERR_H__ */
