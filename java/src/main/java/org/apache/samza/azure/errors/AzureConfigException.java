package org.apache.samza.azure.errors;

/** Invalid or missing configuration; the message names the key and what was expected. */
public class AzureConfigException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "CONFIG";

  public AzureConfigException(String message) {
    super(CODE, message);
  }
}
